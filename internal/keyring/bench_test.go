package keyring

import (
	"bytes"
	"testing"
)

// benchBody is an SMS-sized message body.
var benchBody = bytes.Repeat([]byte("m"), 160)

func BenchmarkEncrypt(b *testing.B) {
	kr := newKeyring(b, newKey("2026-11-24-a1b2", 1))
	ad := []byte("0190f5a2-7c3e-7b1d-9a4f-3c2e1d0b9a87")
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Encrypt(benchBody, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	kr := newKeyring(b, newKey("2026-11-24-a1b2", 1))
	ad := []byte("0190f5a2-7c3e-7b1d-9a4f-3c2e1d0b9a87")
	envelope, err := kr.Encrypt(benchBody, ad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Decrypt(envelope, ad); err != nil {
			b.Fatal(err)
		}
	}
}
