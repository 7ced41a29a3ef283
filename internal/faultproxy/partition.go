package faultproxy

import "github.com/Shopify/toxiproxy/v2/toxics"

// partitionType is the name under which partitionToxic is registered with
// Toxiproxy.
const partitionType = "electionkit_partition"

// partitionToxic holds a direction of a link still: it takes no chunk from
// its input until it is removed, so the chunks wait (and the kernel's socket
// buffers fill behind them) as TCP segments wait for retransmission during a
// real partition. When Toxiproxy removes it, it returns and Toxiproxy
// forwards what waited, in order, without closing the connection.
//
// Toxiproxy's own timeout toxic (timeout 0) is not used: it drops bytes, and
// its removal closes the connection and can strand the goroutine that was
// handing it a chunk, which then never ends.
type partitionToxic struct{}

// Pipe blocks until the toxic is interrupted (removed). It ignores its
// input, including the end of the stream: a closed connection is noticed
// only after the heal, as across a real partition.
func (*partitionToxic) Pipe(stub *toxics.ToxicStub) {
	<-stub.Interrupt
}

func init() {
	toxics.Register(partitionType, new(partitionToxic))
}
