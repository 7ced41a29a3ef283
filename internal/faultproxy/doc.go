// Package faultproxy puts a TCP proxy between a test's client and a store
// server so the test can partition them.
//
// A [Proxy] runs Toxiproxy's proxy in-process (no toxiproxy server, no HTTP
// API). [Proxy.Cut] makes a partition, not a reset: connections stay open
// but no byte passes in either direction, on existing connections and on
// ones opened during the cut, so requests hang until their deadlines.
// [Proxy.Heal] lets bytes through again, the ones that waited first, so
// connections survive a cut as they survive a partition shorter than TCP's
// retransmission timeout.
//
// A Proxy is a [conformance.Link]. It forwards only to loopback addresses.
package faultproxy
