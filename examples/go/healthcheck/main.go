// Command healthcheck is a tiny HTTP liveness/readiness server.
//
// It answers GET /healthz with "ok" and GET /readyz with "ready". The listen
// address comes from the -addr flag, else $HEALTHCHECK_ADDR, else
// 127.0.0.1:8080. Port 0 picks a free port; the real address is printed as
// "listening on <addr>" once the socket is bound. SIGTERM or SIGINT shuts the
// server down gracefully and the process exits 0. With -selftest it serves on
// 127.0.0.1:0, GETs its own /healthz, prints "selftest ok" and exits 0 (1 on any
// failure): a check that the binary runs where it was deployed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const defaultAddr = "127.0.0.1:8080"

func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "ready")
	})
	return mux
}

func main() {
	addr := flag.String("addr", "", "listen address (default $HEALTHCHECK_ADDR or "+defaultAddr+")")
	shutdownTimeout := flag.Duration("shutdown-timeout", 5*time.Second, "graceful shutdown timeout")
	selftest := flag.Bool("selftest", false, "answer its own /healthz on 127.0.0.1, then exit 0")
	flag.Parse()

	if *selftest {
		if err := runSelftest(); err != nil {
			fmt.Fprintf(os.Stderr, "healthcheck: selftest: %v\n", err)
			os.Exit(1)
		}
		fmt.Println("selftest ok")
		return
	}

	listenAddr := *addr
	if listenAddr == "" {
		listenAddr = os.Getenv("HEALTHCHECK_ADDR")
	}
	if listenAddr == "" {
		listenAddr = defaultAddr
	}

	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: listen %s: %v\n", listenAddr, err)
		os.Exit(1)
	}

	srv := &http.Server{
		Handler:           newMux(),
		ReadHeaderTimeout: 5 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	fmt.Printf("listening on %s\n", ln.Addr().String())
	_ = os.Stdout.Sync()

	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("healthcheck: serve: %v", err)
			os.Exit(1)
		}
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Printf("healthcheck: shutdown: %v", err)
			os.Exit(1)
		}
		fmt.Println("shut down")
	}
}

// runSelftest serves on a free port of 127.0.0.1 and checks that /healthz answers "ok".
func runSelftest() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newMux(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return fmt.Errorf("GET /healthz: %s %q", resp.Status, body)
	}
	return nil
}
