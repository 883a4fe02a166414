// Command pspsim serves the in-memory Klarna, Hellgate and Stripe
// simulator that pspguard is tested and demonstrated against. See package
// internal/pspsim for what it simulates and its /_sim/ control API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pspguard/pspguard/internal/pspsim"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("pspsim: ")
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Fatal(err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("pspsim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9001", "address to listen on")
	latency := fs.Duration("latency", 0, "latency added to every PSP request")
	failPercent := fs.Int("fail-percent", 0, "share of PSP requests answered 503 without effect (0..100)")
	dropAfterCapture := fs.Int("drop-after-capture", 0, "share of captures applied and then answered by closing the connection (0..100)")
	failAfterCapture := fs.Int("fail-after-capture", 0, "share of captures applied and then answered 500 (0..100)")
	dropAfterChange := fs.Int("drop-after-change", 0, "share of order changes (PATCH authorization, release, cancel) applied and then answered by closing the connection (0..100)")
	failAfterChange := fs.Int("fail-after-change", 0, "share of order changes applied and then answered 500 (0..100)")
	readDelay := fs.Duration("read-delay", 0, "how long an order read answers after taking its snapshot")
	noLimits := fs.Bool("no-limits", false, "apply every Klarna and Stripe capture, and every Klarna PATCH authorization, whatever the order's amounts and state (see GET /_sim/books)")
	seed := fs.Int64("seed", 0, "seed of the fault draws; 0 seeds from the clock")
	passwords := map[string]string{}
	fs.Func("password", "USER:PASSWORD: Klarna Basic auth for USER needs this password, others get 401 (repeatable; other users may use any)",
		func(v string) error {
			user, password, ok := strings.Cut(v, ":")
			if !ok || user == "" || password == "" {
				return errors.New("want USER:PASSWORD")
			}
			passwords[user] = password
			return nil
		})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	pct := func(p int) bool { return p >= 0 && p <= 100 }
	if *latency < 0 || *readDelay < 0 || !pct(*failPercent) || !pct(*dropAfterCapture) ||
		!pct(*failAfterCapture) || !pct(*dropAfterChange) || !pct(*failAfterChange) {
		return errors.New("-latency and -read-delay must not be negative, -fail-percent, -drop-after-capture, -fail-after-capture, -drop-after-change and -fail-after-change must be 0..100")
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: pspsim.New(pspsim.Options{
			Latency:          *latency,
			FailPercent:      *failPercent,
			DropAfterCapture: *dropAfterCapture,
			FailAfterCapture: *failAfterCapture,
			DropAfterChange:  *dropAfterChange,
			FailAfterChange:  *failAfterChange,
			ReadDelay:        *readDelay,
			NoLimits:         *noLimits,
			Seed:             *seed,
			Passwords:        passwords,
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Printf("simulating Klarna and Hellgate on http://%s", ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	log.Print("stopped")
	return nil
}
