package conformance

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/electionkit/election"
)

// expiryMargin is the scheduling allowance, on top of the TTL and the
// harness's ExpiryLag, within which an unrenewed claim must be gone.
const expiryMargin = 2 * time.Second

// owners are the three nodes of WrongToken: a owns a claim, b takes the
// election after it, c acts on a's claim from a session of its own.
type owners struct{ a, b, c *node }

// testWrongToken: renew and release succeed only for the token the store
// holds, whatever a session remembers of the claims it made. Checked on the
// raw Backend in four situations:
//
//   - forged: a session presents a token the store does not hold;
//   - released elsewhere: the owner's session still remembers its claim,
//     but another session released it by token and a third took the
//     election; one renewal of that claim and another the owner still
//     holds must list only the first;
//   - changed line (Capabilities.Queue): another session's release
//     promotes the claim waiting behind the owner's, or takes the owner's
//     own claim out of line;
//   - expired: the owner's session stopped renewing, the claim expired
//     (not before the TTL, and within TTL + ExpiryLag + 2s) and another
//     session took the election (within ClaimDelay + 2s).
//
// In the last three the owner's session must report the claim lost
// (a *election.NotOwnerError naming it, or ErrSessionExpired when the
// session itself expired) and its release must change nothing. A failure
// there means the backend answered from what its session remembers
// instead of asking the store, or the store's own compare (the Redis
// script, the etcd transaction, the Consul check-and-set) is broken:
// a stale owner could renew or release its successor's term. No error
// text may quote an owner token in full (TokenPrefix is fine): errors are
// logged, and a token in a log lets its reader renew or release the claim.
func testWrongToken(e *env) {
	o := owners{a: e.newNode("a"), b: e.newNode("b"), c: e.newNode("c")}
	e.forgedToken(o)
	e.releasedElsewhere(o)
	if e.caps.Queue {
		e.lineChangedElsewhere(o)
	}
	e.expiredOwner(o)
}

// forgedToken: renew and release with a token the store does not hold fail
// with ErrNotOwner and change nothing.
func (e *env) forgedToken(o owners) {
	const name = "tokens"
	sa, sb := e.openSession(o.a, e.timing.TTL), e.openSession(o.b, e.timing.TTL)
	held := e.mustClaim(sa, name, "token-a-0123456789", "a")
	if _, err := sb.Claim(e.ctx, election.ClaimRequest{Name: name, Token: "token-b-0123456789", ID: "b"}); !errors.Is(err, election.ErrTaken) {
		e.t.Fatalf("second Claim = %v, want ErrTaken", err)
	} else {
		e.noTokenIn(err, "second Claim")
		var te *election.TakenError
		if !errors.As(err, &te) || te.Holder.ID != "a" || te.Holder.Fence != held.Fence {
			e.t.Fatalf("TakenError = %+v, want holder a with fence %d", te, held.Fence)
		}
	}
	forged := election.Claim{Name: name, Token: "token-b-0123456789", Fence: held.Fence}
	e.wantNotOwner(sb.Renew(e.ctx, []election.Claim{forged}), "Renew with a wrong token")
	e.wantNotOwner(sb.Release(e.ctx, forged), "Release with a wrong token")
	e.wantNotOwner(sa.Release(e.ctx, election.Claim{Name: name, Token: "not-the-token", Fence: held.Fence}), "Release by the owner's session with a wrong token")
	e.wantHolder(o.c, name, "a", held.Fence, "after a forged renew and release")
	if err := sa.Renew(e.ctx, []election.Claim{held}); err != nil {
		e.t.Fatalf("owner's Renew = %v", err)
	}
	if err := sa.Release(e.ctx, held); err != nil {
		e.t.Fatalf("owner's Release = %v", err)
	}
	e.wantVacant(o.c, name, "after the owner's release")
	again := e.mustClaim(sb, name, "token-b-0123456789", "b")
	if again.Fence <= held.Fence {
		e.t.Fatalf("fence after re-claim %d is not greater than %d", again.Fence, held.Fence)
	}
}

// releasedElsewhere: c releases one of a's two claims by its token, b
// takes that election; a's session, which made the claim and is alive,
// must learn from the store that the claim is gone, and that the other
// one is not.
func (e *env) releasedElsewhere(o owners) {
	const name = "tokens-released"
	// A long TTL keeps the sessions alive throughout, so the only right
	// answer to a's renewal is "not owner", never "session expired".
	long := 5 * e.timing.TTL
	sa, sb, sc := e.openSession(o.a, long), e.openSession(o.b, long), e.openSession(o.c, long)
	held := e.mustClaim(sa, name, "token-released-a-0123456789", "a")
	kept := e.mustClaim(sa, name+"-kept", "token-kept-a-0123456789", "a")
	if err := sc.Release(e.ctx, held); err != nil {
		e.t.Fatalf("Release of a's claim, by its token, through another session = %v, want nil (release goes by token)", err)
	}
	taken := e.mustClaim(sb, name, "token-released-b-0123456789", "b")
	if taken.Fence <= held.Fence {
		e.t.Fatalf("fence of the next term %d is not greater than %d", taken.Fence, held.Fence)
	}
	// One renewal of both of a's claims: the store decides per claim.
	err := sa.Renew(e.ctx, []election.Claim{kept, held})
	e.wantLost(err, held, false, "Renew by the session that made a claim another session released")
	if notOwnerLists(err, kept) {
		e.t.Fatalf("Renew of two claims, one released elsewhere: the NotOwnerError also lists the claim the store still holds")
	}
	e.wantHolder(o.c, name+"-kept", "a", kept.Fence, "after a renewal of a's two claims")
	e.wantNotOwner(sa.Release(e.ctx, held), "Release by the session that made a claim another session released")
	stale := election.Claim{Name: name, Token: held.Token, Fence: taken.Fence}
	e.wantNotOwner(sa.Release(e.ctx, stale), "Release with a's old token and b's fence")
	e.wantHolder(o.c, name, "b", taken.Fence, "after the stale owner's renew and release")
	if err := sb.Renew(e.ctx, []election.Claim{taken}); err != nil {
		e.t.Fatalf("Renew by the new holder = %v", err)
	}
	if err := sb.Release(e.ctx, taken); err != nil {
		e.t.Fatalf("Release by the new holder = %v", err)
	}
}

// lineChangedElsewhere: with a line of waiting claims, c's release of a's
// held claim promotes b's; then c takes a's new claim out of line. Each
// time a's session still remembers a claim the store has dropped.
func (e *env) lineChangedElsewhere(o owners) {
	const name = "tokens-line"
	long := 5 * e.timing.TTL
	sa, sb, sc := e.openSession(o.a, long), e.openSession(o.b, long), e.openSession(o.c, long)
	held := e.mustClaim(sa, name, "token-line-a-0123456789", "a")
	queued := e.mustEnqueue(sb, name, "token-line-b-0123456789", "b", held.Fence)

	if err := sc.Release(e.ctx, held); err != nil {
		e.t.Fatalf("Release of a's claim through another session = %v, want nil", err)
	}
	e.wantHolder(o.c, name, "b", queued.Fence, "after a's claim was released through another session, b next in line")
	e.wantLost(sa.Renew(e.ctx, []election.Claim{held}), held, false, "Renew of a's claim after b was promoted")
	e.wantNotOwner(sa.Release(e.ctx, held), "Release of a's claim after b was promoted")
	e.wantHolder(o.c, name, "b", queued.Fence, "after the stale owner's renew and release")

	// a waits behind b; c takes a's claim out of line.
	again := e.mustEnqueue(sa, name, "token-line-a2-0123456789", "a", queued.Fence)
	if err := sc.Release(e.ctx, again); err != nil {
		e.t.Fatalf("Release of a's claim in line through another session = %v, want nil", err)
	}
	e.wantLost(sa.Renew(e.ctx, []election.Claim{again}), again, false, "Renew of a's claim taken out of line")
	e.wantNotOwner(sa.Release(e.ctx, again), "Release of a's claim taken out of line")
	if err := sb.Release(e.ctx, queued); err != nil {
		e.t.Fatalf("Release by b, the holder = %v", err)
	}
	e.wantVacant(o.c, name, "after b's release, a's claim having been taken out of line")
}

// expiredOwner: a claims and never renews; once the claim expired, b takes
// the election; a's renew and release must not touch b's term.
func (e *env) expiredOwner(o owners) {
	const name = "tokens-expired"
	opened := time.Now()
	sa := e.openSession(o.a, e.timing.TTL)
	held := e.mustClaim(sa, name, "token-expired-a-0123456789", "a")
	took := e.awaitExpiry("a's unrenewed claim", opened, e.timing.TTL, sa.TTL(), func() bool {
		l, err := o.c.b.Leader(e.ctx, name)
		switch {
		case errors.Is(err, election.ErrNoLeader):
			return true
		case err != nil:
			e.t.Fatalf("Leader while a's claim runs out: %v", err)
		case l.ID != "a" || l.Fence != held.Fence:
			e.t.Fatalf("Leader while a's claim runs out = %+v, want a with fence %d", l, held.Fence)
		}
		return false
	})
	// Vacant, and nobody has claimed it since: the expired owner's release
	// finds nothing of its own (a Redis release that deleted the stale key
	// and answered success broke linearizability: 69c2642).
	e.wantNotOwner(sa.Release(e.ctx, held), "Release of an expired claim that nobody took")
	e.wantVacant(o.c, name, "after the expired owner's release of a vacant election")
	sb := e.openSession(o.b, e.timing.TTL)
	var taken election.Claim
	e.awaitClaimable("b's claim after a's expired", opened.Add(took), func() error {
		var err error
		taken, err = sb.Claim(e.ctx, election.ClaimRequest{Name: name, Token: "token-expired-b-0123456789", ID: "b"})
		return err
	})
	if taken.Fence <= held.Fence {
		e.t.Fatalf("fence after expiry %d is not greater than %d", taken.Fence, held.Fence)
	}
	e.wantLost(sa.Renew(e.ctx, []election.Claim{held}), held, true, "Renew of an expired claim")
	e.wantNotOwner(sa.Release(e.ctx, held), "Release of an expired claim")
	e.wantHolder(o.c, name, "b", taken.Fence, "after the expired owner's renew and release")
	if err := sb.Renew(e.ctx, []election.Claim{taken}); err != nil {
		e.t.Fatalf("Renew by the new holder = %v", err)
	}
}

// awaitExpiry polls gone, every granted/20, until it reports the claim gone.
// from is when the session holding the claim was opened or last renewed,
// taken before that call. It fails the test if the claim is gone at a
// probe that returned before from + minTTL (the store expired it early:
// its holder could be acting while another one is elected), or still
// there after from + granted + ExpiryLag + expiryMargin (the store does
// not expire it). It returns how long after from the claim was seen gone.
func (e *env) awaitExpiry(what string, from time.Time, minTTL, granted time.Duration, gone func() bool) time.Duration {
	e.t.Helper()
	latest := granted + e.timing.ExpiryLag + expiryMargin
	for {
		g := gone()
		took := time.Since(from)
		switch {
		case g && took < minTTL:
			e.t.Fatalf("%s was gone %v after its session was opened or last renewed, before the TTL %v", what, took, minTTL)
		case g:
			return took
		case took > latest:
			e.t.Fatalf("%s still there %v after its session was opened or last renewed, over TTL %v + expiry lag %v + %v",
				what, took, granted, e.timing.ExpiryLag, expiryMargin)
		case e.ctx.Err() != nil:
			e.t.Fatalf("%s: %v", what, e.ctx.Err())
		}
		time.Sleep(granted / 20)
	}
}

// refusedInDelay reports whether err refused a claim for the store's claim
// delay (Timing.ClaimDelay): a *election.TakenError that names no holder.
// It fails the test if the harness declares no delay, or if the error does
// not say when to claim again (the core would not know how long to wait),
// or says a time past the declared delay (the core would wait that long).
func (e *env) refusedInDelay(err error, what string) bool {
	e.t.Helper()
	if !refusedNoHolder(err) {
		return false
	}
	var te *election.TakenError
	errors.As(err, &te)
	switch {
	case e.timing.ClaimDelay <= 0:
		e.t.Fatalf("%s refused with no holder (%v), but the harness declares no ClaimDelay: an ended claim must leave the election claimable at once", what, err)
	case te.ExpiresIn <= 0:
		e.t.Fatalf("%s refused with no holder and no ExpiresIn (%v): the core would not know when to claim again", what, err)
	case te.ExpiresIn > e.timing.ClaimDelay+expiryMargin:
		e.t.Fatalf("%s refused with no holder for ExpiresIn %v (%v), over the declared ClaimDelay %v + %v: the core would wait that long",
			what, te.ExpiresIn, err, e.timing.ClaimDelay, expiryMargin)
	}
	return true
}

// awaitClaimable calls claim until it succeeds. A claim refused for the
// store's claim delay is made again after a twentieth of the TTL; it fails
// the test if the election, found vacant (or refused with no holder) at
// vacant, is still refused ClaimDelay + expiryMargin later, and on any
// other error.
func (e *env) awaitClaimable(what string, vacant time.Time, claim func() error) {
	e.t.Helper()
	latest := e.timing.ClaimDelay + expiryMargin
	for refused := 0; ; refused++ {
		err := claim()
		switch {
		case err == nil:
			if refused > 0 {
				e.t.Logf("%s: refused with no holder %d times, claimed %v after the election was vacant (claim delay %v)",
					what, refused, time.Since(vacant).Round(time.Millisecond), e.timing.ClaimDelay)
			}
			return
		case !e.refusedInDelay(err, what):
			e.t.Fatalf("%s: %v", what, err)
		case time.Since(vacant) > latest:
			e.t.Fatalf("%s still refused %v after the election was vacant, over the claim delay %v + %v: %v",
				what, time.Since(vacant), e.timing.ClaimDelay, expiryMargin, err)
		case e.ctx.Err() != nil:
			e.t.Fatalf("%s: %v", what, e.ctx.Err())
		}
		time.Sleep(e.timing.TTL / 20)
	}
}

// refusedNoHolder reports whether err refused a claim while naming no
// holder: a store that refuses claims for a while (Timing.ClaimDelay,
// Redis's restart quarantine).
func refusedNoHolder(err error) bool {
	var te *election.TakenError
	return errors.As(err, &te) && te.Holder.ID == "" && te.Holder.Fence == 0
}

func (e *env) mustClaim(s election.Session, name, token, id string) election.Claim {
	e.t.Helper()
	c, err := s.Claim(e.ctx, election.ClaimRequest{Name: name, Token: token, ID: id})
	if err != nil {
		e.t.Fatalf("Claim(%q) by %s: %v", name, id, err)
	}
	return c
}

// mustEnqueue puts a claim in line behind the holder with fence
// holderFence, which Enqueue must report.
func (e *env) mustEnqueue(s election.Session, name, token, id string, holderFence uint64) election.Claim {
	e.t.Helper()
	c, h, err := s.(election.Queuer).Enqueue(e.ctx, election.ClaimRequest{Name: name, Token: token, ID: id})
	switch {
	case err != nil:
		e.t.Fatalf("Enqueue(%q) by %s: %v", name, id, err)
	case h == nil || h.Fence != holderFence:
		e.t.Fatalf("Enqueue(%q) by %s: holder %+v, want the claim with fence %d", name, id, h, holderFence)
	case c.Fence <= holderFence:
		e.t.Fatalf("Enqueue(%q) by %s: fence %d, not greater than the holder's %d", name, id, c.Fence, holderFence)
	}
	return c
}

// wantNotOwner fails the test unless err wraps election.ErrNotOwner and
// its text quotes no owner token.
func (e *env) wantNotOwner(err error, what string) {
	e.t.Helper()
	if !errors.Is(err, election.ErrNotOwner) {
		e.t.Fatalf("%s = %v, want ErrNotOwner", what, err)
	}
	e.noTokenIn(err, what)
}

// ownerTokens are the tokens WrongToken claims, renews and releases with.
var ownerTokens = []string{
	"token-a-0123456789", "token-b-0123456789", "not-the-token",
	"token-released-a-0123456789", "token-released-b-0123456789", "token-kept-a-0123456789",
	"token-line-a-0123456789", "token-line-b-0123456789", "token-line-a2-0123456789",
	"token-expired-a-0123456789", "token-expired-b-0123456789",
}

// noTokenIn fails the test if the text of err quotes an owner token in
// full: errors end up in logs, and a token there lets whoever reads them
// renew or release the claim. election.TokenPrefix is fine.
func (e *env) noTokenIn(err error, what string) {
	e.t.Helper()
	text := err.Error()
	for _, tok := range ownerTokens {
		if strings.Contains(text, tok) {
			e.t.Fatalf("%s: the error quotes the owner token %s… in full: %v", what, election.TokenPrefix(tok), err)
		}
	}
}

// wantLost checks a Renew error for claim c that the store no longer holds:
// a *election.NotOwnerError listing c, or, when expiredOK, ErrSessionExpired.
func (e *env) wantLost(err error, c election.Claim, expiredOK bool, what string) {
	e.t.Helper()
	if expiredOK && errors.Is(err, election.ErrSessionExpired) {
		e.noTokenIn(err, what)
		return
	}
	var no *election.NotOwnerError
	if !errors.As(err, &no) {
		want := "a *election.NotOwnerError"
		if expiredOK {
			want += " or ErrSessionExpired"
		}
		e.t.Fatalf("%s = %v, want %s", what, err, want)
	}
	e.noTokenIn(err, what)
	if notOwnerLists(err, c) {
		return
	}
	e.t.Fatalf("%s: NotOwnerError lists %d claims, not the claim of %q with fence %d", what, len(no.Claims), c.Name, c.Fence)
}

// notOwnerLists reports whether err is a *election.NotOwnerError that
// lists c (same name and token).
func notOwnerLists(err error, c election.Claim) bool {
	var no *election.NotOwnerError
	if !errors.As(err, &no) {
		return false
	}
	return slices.ContainsFunc(no.Claims, func(l election.Claim) bool { return l.Name == c.Name && l.Token == c.Token })
}

// wantHolder reads name through n and fails unless id holds it with fence.
func (e *env) wantHolder(n *node, name, id string, fence uint64, when string) {
	e.t.Helper()
	l, err := n.b.Leader(e.ctx, name)
	if err != nil || l.ID != id || l.Fence != fence {
		e.t.Fatalf("%s, Leader(%q) = %+v, %v; want %s with fence %d", when, name, l, err, id, fence)
	}
}

// wantVacant reads name through n and fails unless it is vacant.
func (e *env) wantVacant(n *node, name, when string) {
	e.t.Helper()
	if l, err := n.b.Leader(e.ctx, name); !errors.Is(err, election.ErrNoLeader) {
		e.t.Fatalf("%s, Leader(%q) = %+v, %v; want ErrNoLeader", when, name, l, err)
	}
}
