package cache

import (
	"fmt"
	"testing"
)

func TestSmoke(t *testing.T) {
	c, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20000 {
		k := []byte(fmt.Sprintf("key-%d", i))
		if err := c.Set(k, []byte(fmt.Sprintf("value-%d", i))); err != nil {
			t.Fatal(i, err)
		}
		v, ok := c.Get(nil, k)
		if !ok || string(v) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("get %d: %q %v", i, v, ok)
		}
	}
	st := c.Stats()
	t.Logf("%+v", st)
	v, h, err := c.Pin([]byte("key-19999"))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(string(v))
	if err := c.Close(); err == nil {
		t.Fatal("close with pin")
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err == nil {
		t.Fatal("double release")
	} else {
		t.Log(err)
	}
	if err := c.Resize(1 << 16); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", c.Stats())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
