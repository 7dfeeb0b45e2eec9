// Registers the mapped suite (QuestDB's memory microbenchmarks and column
// append throughput) with `offheap bench`.

package main

import _ "github.com/offheap/offheap/internal/bench/mappedbench"
