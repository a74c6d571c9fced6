package protocol

import "testing"

func TestNotFoundNamesTheHash(t *testing.T) {
	var h [32]byte
	for i := range h {
		h[i] = byte(i * 7)
	}
	frame, err := Encode(NotFound(h))
	if err != nil {
		t.Fatal(err)
	}
	err = Decode(frame, func(m Message) error {
		got, ok := NotFoundHash(m.(*Error))
		if !ok || got != h {
			t.Fatalf("NotFoundHash = %x %v, want %x", got, ok, h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Error{
		{Code: CodeInternal, Message: NotFound(h).Message},
		{Code: CodeNotFound, Message: "tensor 0102 is not held"},
		{Code: CodeNotFound, Message: notFoundPrefix + "zz"},
	} {
		if _, ok := NotFoundHash(e); ok {
			t.Errorf("NotFoundHash(%+v) ok", e)
		}
	}
}
