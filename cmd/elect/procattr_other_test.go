//go:build !linux

package main

import "syscall"

func testProcAttr() *syscall.SysProcAttr { return nil }
