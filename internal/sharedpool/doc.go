// Package sharedpool has no code: its tests run a cache and an exchange on
// one pool (DESIGN.md, "Cache and exchange share a pool"). They live here
// because neither library package's tests may build the other (.ci/run).
package sharedpool
