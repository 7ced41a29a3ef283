// Package robustness runs the library under random faults with every
// candidate a real OS process, in the spirit of etcd's tests/robustness.
//
// The test (robustness_test.go) starts a real store (etcd, redis-server,
// Consul, from internal/teststore; or a multi-node one: 3 etcd members, 3
// Consul servers with 2 client agents, Redis with a replica and 3
// Sentinels), 3 to 5 processes of the candidate
// program (cmd/candidate), each reaching the store through a fault proxy of
// its own, and a fenced sink that every leader writes to with its term's
// fence. A seeded schedule draws faults from a catalogue (see README.md):
// partitions, pauses and kills of the leader's process, pauses and restarts
// of the store, a handler that lingers past Stop, a Close mid-term, and on
// a multi-node store the loss or restart of a member, a server, a client
// agent, a primary, a replica or a Sentinel, and Raft leader changes. At the
// end the history checker (internal/history) checks the recorded terms and
// the sink checks its writes; recovery times per fault kind are reported.
//
// This file's package holds only the wire format between the candidates
// and the test (Message, Ack, EventRecord).
package robustness
