package testserver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// LogPath returns the path of the log file holding the output of every run
// of the server. It is removed with the test's temporary directory.
func (p *Process) LogPath() string { return p.logPath }

// maxTailBytes bounds how much of the log LogTail reads.
const maxTailBytes = 1 << 20

// LogTail returns the last n lines of the server's log (stdout and stderr
// of every run, each run introduced by a "=== testserver:" line), for
// failure messages. It reads at most the last MiB of the file; if the log
// cannot be read it returns a line saying why.
func (p *Process) LogTail(n int) string {
	if n <= 0 {
		return ""
	}
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	offset := max(info.Size()-maxTailBytes, 0)
	buf := make([]byte, info.Size()-offset)
	if _, err := f.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
