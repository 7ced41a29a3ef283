// Package faultproxy puts a TCP proxy between a test's client and a store
// server so the test can partition them.
//
// A [Proxy] runs Toxiproxy's proxy in-process (no toxiproxy server, no HTTP
// API). [Proxy.Cut] makes a partition, not a reset: connections stay open
// but no byte passes in either direction, on existing connections and on
// ones opened during the cut, so requests hang until their deadlines.
// [Proxy.Heal] lets bytes through again. Bytes sent during a cut are
// dropped, not delivered late, so connections that lived through a cut are
// closed when it heals (their byte streams have a gap) and clients
// reconnect: like a partition that outlasted TCP's retransmissions.
//
// A Proxy is a [conformance.Link]. It forwards only to loopback addresses.
package faultproxy
