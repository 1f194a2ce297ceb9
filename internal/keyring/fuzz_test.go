package keyring

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func FuzzDecrypt(f *testing.F) {
	kr := newKeyring(f, newKey("k1", 1), newKey("2026-11-24-a1b2", 2))
	valid, err := kr.Encrypt([]byte("a message body"), []byte("msg-1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, []byte("msg-1"))
	f.Add(valid[:len(valid)-1], []byte("msg-1"))
	f.Add(valid, []byte("msg-2"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0x01, 0xff}, []byte{})
	f.Add([]byte{0x01, 2, 'k', '1'}, []byte("msg-1"))
	f.Fuzz(func(t *testing.T, envelope, ad []byte) {
		in := bytes.Clone(envelope)
		plaintext, err := kr.Decrypt(envelope, ad)
		if !bytes.Equal(in, envelope) {
			t.Fatal("Decrypt modified its input")
		}
		id, idErr := KeyID(envelope)
		switch {
		case err != nil && !errors.Is(err, ErrDecrypt):
			t.Fatalf("Decrypt error %v does not wrap ErrDecrypt", err)
		case idErr != nil && err == nil:
			t.Fatalf("Decrypt accepted an envelope that KeyID rejects: %v", idErr)
		case err == nil && !kr.Has(id):
			t.Fatalf("Decrypt succeeded under key %q, which is not in the keyring", id)
		case err == nil && !(bytes.Equal(ad, []byte("msg-1")) && bytes.Equal(plaintext, []byte("a message body"))):
			// Only an envelope made by Encrypt opens and the fuzzer
			// cannot forge one, so any success must be a seed's.
			t.Fatalf("Decrypt opened a forged envelope: %q", plaintext)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"version":1,"keys":[{"id":"a","created":"2026-11-24T10:00:00Z","key":"KEY1"}]}`,
		`{"version":1,"keys":[{"id":"a","key":"KEY1"},{"id":"b","key":"KEY2"}]}`,
		`{"version":1,"keys":[{"id":"a","key":"SHORT"}]}`,
		`{"version":1,"keys":[{"id":"a","key":"KEY1"},{"id":"a","key":"KEY2"}]}`,
		`{"version":2}`,
		`[]`,
		``,
		`{"version":1,"keys":[{"id":"a","key":"KEY1\u0000"}]}`,
	} {
		f.Add(keyFile(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kr, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip and work.
		out, err := kr.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed keyring: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal()): %v", err)
		}
		if !slices.Equal(kr.IDs(), back.IDs()) {
			t.Fatalf("IDs changed in a round trip: %v, then %v", kr.IDs(), back.IDs())
		}
		if err := back.SelfTest(); err != nil {
			t.Fatal(err)
		}
	})
}
