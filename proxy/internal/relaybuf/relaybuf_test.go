package relaybuf

import "testing"

func TestSmallUntilAReadFillsIt(t *testing.T) {
	var l Lease
	if n := len(l.Bytes()); n != Small {
		t.Fatalf("first buffer is %d bytes, want %d", n, Small)
	}
	l.Read(Small - 1)
	if n := len(l.Bytes()); n != Small {
		t.Fatalf("after a short read the buffer is %d bytes, want %d", n, Small)
	}
	l.Read(Small)
	if n := len(l.Bytes()); n != Large {
		t.Fatalf("after a full read the buffer is %d bytes, want %d", n, Large)
	}
	l.Read(10)
	if n := len(l.Bytes()); n != Large {
		t.Fatalf("a large lease went back to %d bytes", n)
	}
	l.Release()
	if l.small != nil || l.large != nil {
		t.Fatal("Release kept a buffer")
	}
	if n := len(l.Bytes()); n != Small {
		t.Fatalf("a released lease starts again with %d bytes, want %d", n, Small)
	}
	l.Release()
}
