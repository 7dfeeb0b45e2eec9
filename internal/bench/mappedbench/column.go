package mappedbench

import "github.com/offheap/offheap/internal/bench"

func columnTasks(cfg bench.Config) ([]bench.Task, error) { return nil, nil }
