package interop

import (
	"testing"
	"time"
)

func TestTmpIdentityInvisible(t *testing.T) {
	f := newReloadFixture(t)
	second := f.p.issueSameSize(t, f.first)
	overwriteKeepingIdentity(t, f.p.keyPath(), second.key)
	overwriteKeepingIdentity(t, f.p.crtPath(), second.crt)
	time.Sleep(11 * time.Second)
	if err := waitLeaf(f.d, f.p.pool, f.first.serial, 0); err != nil {
		t.Fatal(err)
	}
	t.Log(f.d.out.String())
}
