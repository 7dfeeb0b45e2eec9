// The pool suite: the segment pool against Go maps, fastcache and freecache.

package main

import _ "github.com/offheap/offheap/internal/bench/poolbench" // registers the pool suite
