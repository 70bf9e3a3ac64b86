// Command pprof-agent exposes the net/http/pprof profiling handlers on a
// loopback address only.
//
// The listen address comes from -addr (default 127.0.0.1:6060). A host that is
// not a loopback address (127.0.0.0/8, ::1 or "localhost") is refused with
// exit status 2. GET /healthz answers "ok"; /debug/pprof/ serves the profiles.
// The real address is printed as "listening on <addr>" once bound (port 0
// picks a free port). SIGTERM or SIGINT shuts the server down gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const defaultAddr = "127.0.0.1:6060"

// checkLoopback returns an error unless addr's host is a loopback address.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to listen on %q: host must be a loopback address (127.0.0.0/8, ::1 or localhost)", addr)
	}
	return nil
}

func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "ok")
	})
	return mux
}

func main() {
	addr := flag.String("addr", defaultAddr, "loopback listen address")
	shutdownTimeout := flag.Duration("shutdown-timeout", 5*time.Second, "graceful shutdown timeout")
	flag.Parse()

	if err := checkLoopback(*addr); err != nil {
		fmt.Fprintf(os.Stderr, "pprof-agent: %v\n", err)
		os.Exit(2)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pprof-agent: listen %s: %v\n", *addr, err)
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
			log.Printf("pprof-agent: serve: %v", err)
			os.Exit(1)
		}
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Printf("pprof-agent: shutdown: %v", err)
			os.Exit(1)
		}
		fmt.Println("shut down")
	}
}
