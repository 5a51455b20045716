//go:build !linux

package prober

import (
	"context"
	"errors"

	"github.com/bantay-noc/bantay/probes/config"
)

// ICMP is Linux-only: its sockets and kernel timestamps are Linux's.
type ICMP struct{}

var errICMPLinuxOnly = errors.New("icmp: bantay-probe sends ICMP on Linux only")

// NewICMP returns a prober whose every probe fails: see ICMP.
func NewICMP(string, Options) (*ICMP, error) { return &ICMP{}, nil }

// Method implements Prober.
func (*ICMP) Method() string { return config.MethodICMP }

// Mode is empty: no socket is ever opened.
func (*ICMP) Mode() string { return "" }

// StartError says ICMP is Linux-only.
func (*ICMP) StartError() error { return errICMPLinuxOnly }

// KernelTimestamps is false: no socket is ever opened.
func (*ICMP) KernelTimestamps() bool { return false }

// KernelSendTimestamps is false: no socket is ever opened.
func (*ICMP) KernelSendTimestamps() bool { return false }

// Probe implements Prober.
func (*ICMP) Probe(context.Context) (Result, error) { return Result{}, errICMPLinuxOnly }
