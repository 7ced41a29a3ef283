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
//
// A fence above 2⁵³ is ignored: the claim script computes in Lua doubles,
// exact only below it, and no fence it issues comes near (server TIME in
// µs is about 1.8·10¹⁵); such a value can only be forged (an announcement
// published by hand), and taking it in would stop fences from increasing.
func (b *Backend) noteFence(f uint64) {
	if f > maxExactFence {
		return
	}
	for {
		cur := b.fenceFloor.Load()
		if f <= cur || b.fenceFloor.CompareAndSwap(cur, f) {
			return
		}
	}
}

// maxExactFence is the largest fence a Lua double holds exactly, 2⁵³.
const maxExactFence = 1 << 53
