package redis

// noteFence raises the Backend's fence floor to f. Claims pass the floor
// to the claim script, which issues a fence above it: so a Backend never
// sees an election's fence go backwards, even after the store lost the
// fences it handed out (a restart without persistence, a failover to a
// replica that lacked them) while its clock is behind them (stepped back,
// or a promoted replica's clock behind the old primary's). The floor is
// the highest fence seen in any election of the prefix (claims made,
// claims found taken, reads, announcements on the prefix's channel): all
// of them are microseconds of a server clock or above it, so it is a
// floor for every election. A process that saw none of the lost fences
// has no floor to give: see the README ("Fences after a data loss").
func (b *Backend) noteFence(f uint64) {
	for {
		cur := b.fenceFloor.Load()
		if f <= cur || b.fenceFloor.CompareAndSwap(cur, f) {
			return
		}
	}
}
