// util.go - the throwaway PKI, free ports, and reading a server process's
// memory and CPU counters from /proc.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const benchHostname = "derp.test"

// writePKI writes a CA (ca.pem) and a leaf for derp.test signed by it
// (derp.test.crt holding the leaf alone, derp.test.key), which both servers
// load with -certmode manual -certdir DIR.
func writePKI(dir string) error {
	if err := os.MkdirAll(dir, 0700); err != nil {
		return err
	}
	now := time.Now()
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "derper bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: benchHostname},
		DNSNames:     []string{benchHostname},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(23 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		typ  string
		der  []byte
		mode os.FileMode
	}{
		{"ca.pem", "CERTIFICATE", caDER, 0644},
		{benchHostname + ".crt", "CERTIFICATE", leafDER, 0644},
		{benchHostname + ".key", "EC PRIVATE KEY", kb, 0600},
	}
	for _, f := range files {
		b := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(filepath.Join(dir, f.name), b, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// freePort prints a loopback port that is free right now. The caller retries
// with another one if a parallel test takes it first.
func freePort(proto string) error {
	switch proto {
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	case "udp":
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer pc.Close()
		fmt.Println(pc.LocalAddr().(*net.UDPAddr).Port)
	default:
		return fmt.Errorf("protocol %q: want tcp or udp", proto)
	}
	return nil
}

// procMem is a process's memory as the kernel accounts it, in KiB.
type procMem struct {
	RSSKiB  int64 `json:"rss_kib"` // VmRSS
	PssKiB  int64 `json:"pss_kib"` // Pss from smaps_rollup (shared pages split)
	Threads int64 `json:"threads"` // for context: our workers vs Go's Ms
}

func readMem(pid int) (procMem, error) {
	var m procMem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, fmt.Errorf("server process %d: %v (did it exit?)", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			m.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			m.Threads, _ = strconv.ParseInt(f[1], 10, 64)
		case "State:":
			if f[1] == "Z" {
				return m, fmt.Errorf("server process %d is a zombie (it exited)", pid)
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "Pss:" {
				m.PssKiB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return m, nil
}

// readCPU returns the process's utime+stime (all threads) in seconds.
func readCPU(pid int, clkTck float64) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server process %d: %v (did it exit?)", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after the last ')'. utime and stime are fields 14, 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	if f[0] == "Z" {
		return 0, fmt.Errorf("server process %d is a zombie (it exited)", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	return (ut + st) / clkTck, nil
}
