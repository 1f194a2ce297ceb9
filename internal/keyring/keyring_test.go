package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// newKey returns a key whose material is fill repeated, so tests that
// compare keyrings or look for leaked material know what to look for.
func newKey(id string, fill byte) Key {
	k := Key{id: id}
	for i := range k.material {
		k.material[i] = fill + byte(i)
	}
	return k
}

func newKeyring(t testing.TB, keys ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return kr
}

func encrypt(t testing.TB, kr *Keyring, plaintext, ad string) []byte {
	t.Helper()
	envelope, err := kr.Encrypt([]byte(plaintext), []byte(ad))
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return envelope
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	kr := newKeyring(t, newKey("k1", 1))
	tests := []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{"empty body", nil, []byte("msg-1")},
		{"short body", []byte("hello"), []byte("msg-2")},
		{"sms-sized body", bytes.Repeat([]byte("x"), 160), []byte("msg-3")},
		{"unicode body", []byte("Grüße, 世界 👋"), []byte("msg-4")},
		{"large body", bytes.Repeat([]byte{0xab}, 1<<20), []byte("msg-5")},
		{"no associated data", []byte("body"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			envelope, err := kr.Encrypt(tt.plaintext, tt.ad)
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			if want := 2 + len("k1") + nonceSize + len(tt.plaintext) + tagSize; len(envelope) != want {
				t.Errorf("envelope is %d bytes, want %d", len(envelope), want)
			}
			if len(tt.plaintext) >= 16 && bytes.Contains(envelope, tt.plaintext[:16]) {
				t.Error("envelope contains the plaintext")
			}
			got, err := kr.Decrypt(envelope, tt.ad)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Decrypt returned %d bytes that differ from the %d-byte plaintext", len(got), len(tt.plaintext))
			}
		})
	}
}

func TestEncryptUsesAFreshNonceEachTime(t *testing.T) {
	kr := newKeyring(t, newKey("k1", 1))
	a := encrypt(t, kr, "same body", "msg-1")
	b := encrypt(t, kr, "same body", "msg-1")
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions of the same body gave the same envelope")
	}
	headerLen := 2 + len("k1")
	if bytes.Equal(a[headerLen:headerLen+nonceSize], b[headerLen:headerLen+nonceSize]) {
		t.Fatal("two encryptions used the same nonce")
	}
}

func TestEnvelopeLayout(t *testing.T) {
	kr := newKeyring(t, newKey("2026-11-24-a1b2", 1))
	envelope := encrypt(t, kr, "body", "msg-1")
	want := append([]byte{0x01, 15}, "2026-11-24-a1b2"...)
	if !bytes.HasPrefix(envelope, want) {
		t.Fatalf("envelope starts % x, want % x", envelope[:len(want)], want)
	}
	id, err := KeyID(envelope)
	if err != nil || id != "2026-11-24-a1b2" {
		t.Fatalf("KeyID = %q, %v; want 2026-11-24-a1b2", id, err)
	}
}

func TestDecryptRejectsEveryTamperedBit(t *testing.T) {
	kr := newKeyring(t, newKey("k1", 1), newKey("k2", 2))
	envelope := encrypt(t, kr, strings.Repeat("secret body ", 4), "msg-1")
	for i := range envelope {
		for bit := range 8 {
			tampered := bytes.Clone(envelope)
			tampered[i] ^= 1 << bit
			if _, err := kr.Decrypt(tampered, []byte("msg-1")); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("byte %d bit %d flipped: err = %v, want ErrDecrypt", i, bit, err)
			}
		}
	}
}

func TestDecryptRejectsWrongKey(t *testing.T) {
	// Same id, different material: the situation after a keyring file was
	// regenerated instead of rotated.
	envelope := encrypt(t, newKeyring(t, newKey("k1", 1)), "body", "msg-1")
	other := newKeyring(t, newKey("k1", 2))
	_, err := other.Decrypt(envelope, []byte("msg-1"))
	if !errors.Is(err, ErrDecrypt) || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrDecrypt and not ErrUnknownKey", err)
	}
}

func TestDecryptRejectsWrongAssociatedData(t *testing.T) {
	kr := newKeyring(t, newKey("k1", 1))
	envelope := encrypt(t, kr, "body", "msg-1")
	for _, ad := range []string{"msg-2", "", "msg-", "msg-10", "MSG-1"} {
		t.Run(ad, func(t *testing.T) {
			_, err := kr.Decrypt(envelope, []byte(ad))
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
			if err.Error() != ErrDecrypt.Error() {
				t.Errorf("error %q says more than ErrDecrypt", err)
			}
		})
	}
}

func TestDecryptReportsUnknownKeyID(t *testing.T) {
	envelope := encrypt(t, newKeyring(t, newKey("old-key", 1)), "body", "msg-1")
	_, err := newKeyring(t, newKey("new-key", 2)).Decrypt(envelope, []byte("msg-1"))
	if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v, want ErrUnknownKey and ErrDecrypt", err)
	}
	if !strings.Contains(err.Error(), `"old-key"`) {
		t.Errorf("error %q does not name the key id", err)
	}
}

func TestMalformedEnvelopesAreErrorsNotPanics(t *testing.T) {
	valid := encrypt(t, newKeyring(t, newKey("k1", 1)), "body", "msg-1")
	tests := []struct {
		name     string
		envelope []byte
		want     string
	}{
		{"nil", nil, "too short"},
		{"version only", []byte{0x01}, "too short"},
		{"unknown version", append([]byte{0x02}, valid[1:]...), "unsupported version 0x02"},
		{"zero key id length", []byte{0x01, 0, 'k'}, "key id length 0"},
		{"key id length over 64", append([]byte{0x01, 65}, bytes.Repeat([]byte("k"), 100)...), "key id length 65"},
		{"truncated key id", []byte{0x01, 10, 'k', '1'}, "too short"},
		{"no tag", valid[:len(valid)-tagSize-len("body")], "too short"},
		{"key id with a newline", append([]byte{0x01, 2, 'k', '\n'}, make([]byte, 40)...), "position 2"},
		{"garbage", bytes.Repeat([]byte{0xff}, 64), "unsupported version"},
	}
	kr := newKeyring(t, newKey("k1", 1))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := KeyID(tt.envelope); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("KeyID err = %v, want ErrDecrypt mentioning %q", err, tt.want)
			}
			if _, err := kr.Decrypt(tt.envelope, []byte("msg-1")); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Decrypt err = %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestRotationKeepsOldEnvelopesReadable(t *testing.T) {
	kr := newKeyring(t, newKey("k1", 1))
	old := encrypt(t, kr, "old body", "msg-1")

	if err := kr.Add(newKey("k2", 2)); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if got := kr.PrimaryID(); got != "k2" {
		t.Errorf("PrimaryID = %q, want k2", got)
	}
	if got := strings.Join(kr.IDs(), ","); got != "k1,k2" {
		t.Errorf("IDs = %s, want k1,k2", got)
	}
	current := encrypt(t, kr, "new body", "msg-2")
	for _, tt := range []struct {
		envelope []byte
		ad, id   string
		body     string
	}{
		{old, "msg-1", "k1", "old body"},
		{current, "msg-2", "k2", "new body"},
	} {
		if id, err := KeyID(tt.envelope); err != nil || id != tt.id {
			t.Errorf("KeyID = %q, %v; want %s", id, err, tt.id)
		}
		got, err := kr.Decrypt(tt.envelope, []byte(tt.ad))
		if err != nil || string(got) != tt.body {
			t.Errorf("Decrypt = %q, %v; want %q", got, err, tt.body)
		}
	}
}

func TestRotationWhileInUse(t *testing.T) {
	// Meant for -race: Add swaps snapshots under running readers.
	kr := newKeyring(t, newKey("k0", 0))
	old := encrypt(t, kr, "body", "msg-1")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				envelope, err := kr.Encrypt([]byte("body"), []byte("msg-2"))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := kr.Decrypt(envelope, []byte("msg-2")); err != nil {
					t.Error(err)
					return
				}
				if _, err := kr.Decrypt(old, []byte("msg-1")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := 1; i <= 20; i++ {
		if err := kr.Add(newKey(fmt.Sprintf("k%d", i), byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if kr.PrimaryID() != "k20" || len(kr.IDs()) != 21 {
		t.Errorf("after concurrent rotation: IDs = %v", kr.IDs())
	}
}

func TestAddRejectsDuplicateAndZeroKeys(t *testing.T) {
	tests := []struct {
		name string
		key  Key
		want string
	}{
		{"duplicate id", newKey("k1", 9), `duplicate id`},
		{"zero key", Key{}, "id is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr := newKeyring(t, newKey("k1", 1))
			err := kr.Add(tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if got := strings.Join(kr.IDs(), ","); got != "k1" {
				t.Errorf("failed Add changed the keyring to %s", got)
			}
		})
	}
}

func TestAddToZeroKeyringMakesItUsable(t *testing.T) {
	var kr Keyring
	if err := kr.Add(newKey("k1", 1)); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := kr.SelfTest(); err != nil {
		t.Fatalf("SelfTest: %v", err)
	}
}

func TestRemove(t *testing.T) {
	t.Run("refuses the last key", func(t *testing.T) {
		kr := newKeyring(t, newKey("k1", 1))
		err := kr.Remove("k1")
		if err == nil || !strings.Contains(err.Error(), "only key") {
			t.Fatalf("err = %v, want a refusal", err)
		}
		if !kr.Has("k1") {
			t.Error("the refused key was removed")
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		kr := newKeyring(t, newKey("k1", 1), newKey("k2", 2))
		if err := kr.Remove("k3"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("old key makes its envelopes unreadable", func(t *testing.T) {
		kr := newKeyring(t, newKey("k1", 1))
		old := encrypt(t, kr, "body", "msg-1")
		if err := kr.Add(newKey("k2", 2)); err != nil {
			t.Fatalf("Add: %v", err)
		}
		if err := kr.Remove("k1"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if kr.Has("k1") || kr.PrimaryID() != "k2" {
			t.Errorf("after Remove: IDs = %v, primary %q", kr.IDs(), kr.PrimaryID())
		}
		if _, err := kr.Decrypt(old, []byte("msg-1")); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Decrypt err = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("primary key hands over to the previous one", func(t *testing.T) {
		kr := newKeyring(t, newKey("k1", 1), newKey("k2", 2))
		if err := kr.Remove("k2"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if id, _ := KeyID(encrypt(t, kr, "body", "msg-1")); id != "k1" {
			t.Errorf("new envelopes use %q, want k1", id)
		}
	})
}

func TestNewKeyringRejectsInvalidKeySets(t *testing.T) {
	tests := []struct {
		name string
		keys []Key
		want string
	}{
		{"no keys", nil, "no keys"},
		{"zero key", []Key{newKey("k1", 1), {}}, "key 2: id is empty"},
		{"duplicate ids", []Key{newKey("k1", 1), newKey("k1", 2)}, `key 2 (id "k1"): duplicate id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKeyring(tt.keys...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestZeroKeyringFailsCleanly(t *testing.T) {
	var kr Keyring
	if _, err := kr.Encrypt([]byte("body"), nil); err == nil {
		t.Error("Encrypt succeeded on an empty keyring")
	}
	if _, err := kr.Marshal(); err == nil {
		t.Error("Marshal succeeded on an empty keyring")
	}
	if err := kr.SelfTest(); err == nil {
		t.Error("SelfTest succeeded on an empty keyring")
	}
	if kr.PrimaryID() != "" || kr.IDs() != nil || kr.Has("") {
		t.Error("empty keyring reports keys")
	}
}

func TestSelfTestPassesForAWorkingKeyring(t *testing.T) {
	if err := newKeyring(t, newKey("k1", 1)).SelfTest(); err != nil {
		t.Fatal(err)
	}
}

func TestGenerate(t *testing.T) {
	t.Run("makes a dated id when asked for none", func(t *testing.T) {
		k, err := Generate("")
		if err != nil {
			t.Fatal(err)
		}
		want := k.Created().Format("2006-01-02") + "-"
		if !strings.HasPrefix(k.ID(), want) || len(k.ID()) != len(want)+4 {
			t.Errorf("id %q is not date plus four hex digits", k.ID())
		}
	})
	t.Run("keeps a given id", func(t *testing.T) {
		k, err := Generate("prod.2026_11")
		if err != nil || k.ID() != "prod.2026_11" {
			t.Fatalf("Generate = %v, %v", k, err)
		}
	})
	t.Run("rejects an invalid id", func(t *testing.T) {
		for _, id := range []string{"has space", "slash/", strings.Repeat("a", 65), "ünïcode"} {
			if _, err := Generate(id); err == nil {
				t.Errorf("Generate(%q) succeeded", id)
			}
		}
	})
	t.Run("draws different material each time", func(t *testing.T) {
		a, _ := Generate("a")
		b, _ := Generate("b")
		if a.material == b.material {
			t.Fatal("two generated keys share their material")
		}
	})
}

// TestEnvelopeBoundaries: the shortest key id and the shortest envelope
// (header, nonce and tag, empty plaintext) are structurally valid; one
// byte less is malformed.
func TestEnvelopeBoundaries(t *testing.T) {
	k, err := Generate("a")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	env, err := kr.Encrypt(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(env) != 2+1+nonceSize+tagSize {
		t.Fatalf("an empty plaintext gives %d bytes", len(env))
	}
	if id, err := KeyID(env); err != nil || id != "a" {
		t.Fatalf("KeyID of the shortest envelope = %q, %v", id, err)
	}
	if plain, err := kr.Decrypt(env, nil); err != nil || len(plain) != 0 {
		t.Fatalf("Decrypt = %q, %v", plain, err)
	}
	if _, err := KeyID(env[:len(env)-1]); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("one byte short: %v, want ErrDecrypt", err)
	}
}
