package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// watermarkFileName is the remote-write resume point's file in the TSDB's
// directory (the TSDB opens only its own block, WAL and chunk folders).
const watermarkFileName = "remote_write_resume.json"

// watermarkFile keeps the resume point on disk so that a SIGKILL, a power
// cut or a full disk leaves either the old point or the new one, never a
// torn file: written to a temporary file, fsynced, renamed over the old one,
// and the folder fsynced so that the rename itself is durable.
type watermarkFile struct {
	dir      string
	failures prometheus.Counter
}

type watermarkJSON struct {
	// ResumeMillis: every acknowledged sample stamped before it (Unix
	// milliseconds) has reached every remote.
	ResumeMillis int64 `json:"resume_unix_ms"`
}

func (w *watermarkFile) path() string { return filepath.Join(w.dir, watermarkFileName) }

// read is 0 when there is no file (a first start, or remote write never
// shipped anything), and an error naming the file when it cannot be used.
func (w *watermarkFile) read() (int64, error) {
	raw, err := os.ReadFile(w.path())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var m watermarkJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, fmt.Errorf("%s: %w", w.path(), err)
	}
	if m.ResumeMillis <= 0 {
		return 0, fmt.Errorf("%s: resume_unix_ms must be a positive time, got %d", w.path(), m.ResumeMillis)
	}
	return m.ResumeMillis, nil
}

// removeStale removes the temporary files a kill left behind before their
// rename; only the store that owns the folder (and holds the TSDB's lock)
// may, at start, as another writer's may be in flight.
func (w *watermarkFile) removeStale() {
	stale, _ := filepath.Glob(w.path() + ".*")
	for _, f := range stale {
		_ = os.Remove(f)
	}
}

func (w *watermarkFile) write(resume int64) error {
	raw, err := json.Marshal(watermarkJSON{ResumeMillis: resume})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(w.dir, watermarkFileName+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), w.path()); err != nil {
		return err
	}
	d, err := os.Open(w.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
