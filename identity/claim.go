package identity

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// maxClaims bounds how many key files ClaimKey tries: more workers than
// this on one machine should name their key files themselves.
const maxClaims = 256

// ErrAllClaimed reports that every key file ClaimKey may use is held by
// another running process.
var ErrAllClaimed = errors.New("identity: every key file is in use by another process")

// ClaimKey gives each of several processes on one machine an identity of
// its own, stable across restarts: it takes the first of dir/name.key,
// dir/name-2.key, dir/name-3.key, … that no other running process holds,
// loading it (or creating it, as LoadOrCreateKey does) and holding it
// until release is called or the process exits. A lock file beside each
// key (name.key.lock, an advisory lock the system drops with the process)
// marks it as held.
//
// Workers need this because the coordinator never lets one address vouch
// twice for a shard: workers started on one machine with one key file are
// a single identity, and a job needs replicas from at least two.
func ClaimKey(dir, name string) (key *ecdsa.PrivateKey, path string, release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	for i := 1; i <= maxClaims; i++ {
		path = filepath.Join(dir, name+".key")
		if i > 1 {
			path = filepath.Join(dir, name+"-"+strconv.Itoa(i)+".key")
		}
		unlock, ok, err := tryLock(path + ".lock")
		if err != nil {
			return nil, "", nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
		}
		if !ok {
			continue
		}
		key, err := LoadOrCreateKey(path)
		if err != nil {
			unlock()
			return nil, "", nil, err
		}
		return key, path, unlock, nil
	}
	return nil, "", nil, fmt.Errorf("%w: %d of them in %s", ErrAllClaimed, maxClaims, dir)
}
