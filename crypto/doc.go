// Package crypto holds AnySync's key hierarchy and every cryptographic
// primitive the client and server use: subkey derivation, the blob AEAD,
// keyed blob IDs, the chunker's secret gear table, token sealing, and the
// password-wrapped key files (master.keys, access.keys).
//
// Everything derives from two random account secrets, the file key and the
// auth key. Subkeys are separated by HKDF-SHA256 with a purpose label, so a
// leak of one derived key says nothing about another.
package crypto
