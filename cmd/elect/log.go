package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// logger writes elect's own lines to stderr: "elect: " and the message.
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logger) infof(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "elect: %s %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}
