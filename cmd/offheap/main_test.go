package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlagsAnywhere(t *testing.T) {
	o, err := parse([]string{"vmem", "--quick", "--reps", "2", "other", "--json"}, suites(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !o.cfg.Quick || !o.json || o.cfg.Reps != 2 || strings.Join(o.names, ",") != "vmem,other" {
		t.Fatalf("parsed %+v", o)
	}
	if o.cfg.BenchTime <= 0 || o.cfg.MaxBytes <= 0 {
		t.Fatalf("defaults not set: %+v", o.cfg)
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"bench", "--reps", "0"},
		{"bench", "--no-such-flag"},
		{"bench", "no-such-suite"},
		{"bench", "--cases", "(", "vmem"},
	} {
		if err := run(args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("offheap %v: no error", args)
		}
	}
}

// TestBenchJSONContract runs the smallest vmem case and checks every line
// against DESIGN.md's JSON output contract.
func TestBenchJSONContract(t *testing.T) {
	var out bytes.Buffer
	dir := t.TempDir()
	args := []string{"bench", "--json", "--reps", "1", "--vmem-min", "1048576", "--vmem-max", "2097152", "--out", dir, "vmem"}
	if err := run(args, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2*3 { // two sizes, three impls, one metric
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["suite"] != "vmem" || m["case"] != "grow" || m["metric"] != "seconds" || len(m) != 6 {
			t.Fatalf("line breaks the contract: %s", l)
		}
		if v, ok := m["value"].(float64); !ok || v <= 0 {
			t.Fatalf("no positive value: %s", l)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "report.md")); err != nil {
		t.Fatal(err)
	}
}

func TestBenchTable(t *testing.T) {
	var out bytes.Buffer
	args := []string{"bench", "--reps", "1", "--vmem-min", "1048576", "--vmem-max", "1048576", "vmem"}
	if err := run(args, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"== vmem", "inplace", "mremap", "copy", "grow"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
}
