// Package store is AnySync's encrypted, deduplicating, git-like storage.
//
// Subpackages each have one job:
//
//	chunker   content-defined chunking with a secret gear table
//	pack      blob encoding (zstd + AEAD) and pack files with encrypted headers
//	tree      tree (directory) and version blobs
//	objstore  where packs live: rclone remotes, memory
//	cache     the chunk cache: decrypted blobs in memory, sealed blobs on disk
//	repo      the repository: index, pack uploads, file writer and reader
package store
