package crypto

import "testing"

func TestProofVerifierAndTokenHash(t *testing.T) {
	proof := []byte("login proof")
	v := ProofVerifier(proof)
	if v != ProofVerifier(proof) {
		t.Fatal("verifier is not deterministic")
	}
	if v == ProofVerifier([]byte("login proog")) {
		t.Fatal("two proofs share a verifier")
	}
	if TokenHash(proof) == v {
		t.Fatal("token hash and proof verifier are not domain-separated")
	}
	if TokenHash([]byte("a")) == TokenHash([]byte("b")) {
		t.Fatal("two tokens share a hash")
	}
	if !Equal(v[:], v[:]) || Equal(v[:], make([]byte, 32)) || Equal(v[:], v[:31]) {
		t.Fatal("Equal is wrong")
	}
}

func TestLoginProofVerifies(t *testing.T) {
	_, file := sealTestMaster(t, "pw")
	_, s, err := OpenMasterKeys(file, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	stored := ProofVerifier(s.LoginProof[:])
	p, err := ParseMasterKeysParams(file)
	if err != nil {
		t.Fatal(err)
	}
	again, err := DerivePasswordSecrets([]byte("pw"), p)
	if err != nil {
		t.Fatal(err)
	}
	got := ProofVerifier(again.LoginProof[:])
	if !Equal(got[:], stored[:]) {
		t.Fatal("a fresh login proof does not match the stored verifier")
	}
	if ProofVerifier(s.WrapKey[:]) == stored {
		t.Fatal("wrap key verifies as the login proof")
	}
}
