package caddymodule

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "rules",
		Usage: "validate <file> | test <file> <cases>... | impact [--site NAME] <draft> <decision-log>...",
		Short: "Checks a compliance rules file, runs decision test cases against it, and shows what a change would decide",
		Long: `
Works with the compliance rules file that psp_guard enforces, without a
running server. A usage error (a missing or extra argument, an unknown
subcommand or flag) exits 2 in every subcommand.

  rules validate <file>
    Checks the file as the gateway would load it. Prints "<file>: ok" with
    its version, merchant count and digest and exits 0, or prints one line
    per problem (file:line: field: what is wrong) and exits 1. Prints a
    "warning:" line for every approval that has expired or expires within
    30 days; warnings do not change the exit status.

  rules test <file> <cases>...
    Runs every decision test case of the cases files against the rules and
    prints one line per case ("ok   name" or "FAIL name: expected ..., got
    ...") and then "N passed, M failed". Exits 1 if a case failed or a file
    is invalid. See testdata/rules/example_cases.yaml for the format.

  rules impact [--site NAME] <draft> <decision-log>...
    Replays the auto-capture decisions recorded in decision-log files (the
    JSON lines the gateway writes; rolled .gz files too) against a draft
    rules file, each at the time it was made, and prints every decision
    that would change (time, merchant, before -> after, the new reason),
    then a summary per merchant. Exits 0 when nothing would change, 1 when
    something would, 2 on an error. --site replays only the lines of that
    site (the psp_guard name), for a process whose sites enforce different
    rules files; it is given once, and a site no decision line names is an
    error (exit 2), not a replay in which nothing changes.
`,
		CobraFunc: rulesCobra,
	})
}

// rulesCobra builds the rules command and its subcommands.
func rulesCobra(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.SuggestionsMinimumDistance = 2
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown subcommand %q: use validate, test or impact", args[0])
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, " or ") + "?)"
		}
		return rulesUsageError(cmd, errors.New(msg))
	}
	// A flag the subcommands do not know, or a repeated --site, is a usage
	// error too; subcommands inherit this from their parent.
	cmd.SetFlagErrorFunc(rulesUsageError)
	cmd.AddCommand(&cobra.Command{
		Use:   "validate <file>",
		Short: "Checks a rules file and lists every problem in it",
		Args:  rulesArgs(cobra.ExactArgs(1)),
		RunE: rulesRunE(func(stdout, stderr io.Writer, args []string) int {
			return rulesValidate(stdout, stderr, args[0], time.Now())
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "test <file> <cases>...",
		Short: "Runs decision test cases against a rules file",
		Args:  rulesArgs(cobra.MinimumNArgs(2)),
		RunE: rulesRunE(func(stdout, stderr io.Writer, args []string) int {
			return rulesTest(stdout, stderr, args[0], args[1:], time.Now())
		}),
	})
	impact := &cobra.Command{
		Use:   "impact [--site NAME] <draft> <decision-log>...",
		Short: "Shows which recorded auto-capture decisions a draft rules file would change",
		Args:  rulesArgs(cobra.MinimumNArgs(2)),
	}
	var site siteFlag
	impact.Flags().Var(&site, "site", "replay only the decisions of this site (the guard's name)")
	impact.RunE = rulesRunE(func(stdout, stderr io.Writer, args []string) int {
		return rulesImpact(stdout, stderr, args[0], args[1:], string(site))
	})
	cmd.AddCommand(impact)
}

// siteFlag is impact's --site. It takes one site: each site of a process
// may enforce its own rules file, so one draft is replayed against one
// site's decisions, and a second --site is refused rather than quietly
// replacing the first.
type siteFlag string

func (s *siteFlag) String() string { return string(*s) }
func (s *siteFlag) Type() string   { return "name" }

func (s *siteFlag) Set(v string) error {
	switch {
	case *s != "":
		return fmt.Errorf("--site is given once: a draft is replayed against one site's decisions (already %q)", string(*s))
	case v == "":
		return errors.New("--site needs a site name")
	}
	*s = siteFlag(v)
	return nil
}

// errRulesFailed makes the process exit 1 once the command has printed
// why. The command does not go through caddycmd.WrapCommandFuncForCobra:
// that exits 0 for status 1 without an error, and logs a non-nil error a
// second time through Caddy's logger.
var errRulesFailed = errors.New("rules check failed")

// rulesRunE runs a subcommand that returns its exit status.
func rulesRunE(run func(stdout, stderr io.Writer, args []string) int) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return rulesExit(cmd, run(cmd.OutOrStdout(), cmd.ErrOrStderr(), args))
	}
}

// rulesExit makes the process exit with status once the command has
// printed why.
func rulesExit(cmd *cobra.Command, status int) error {
	switch status {
	case 0:
		return nil
	case 1:
		cmd.SilenceErrors = true
		return errRulesFailed
	}
	// Caddy's runner carries an exit status above 1 to the process only
	// from a wrapped command function.
	cmd.SilenceErrors = true
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return status, nil })(cmd, nil)
}

// rulesArgs checks a subcommand's arguments, a usage error if they are
// wrong.
func rulesArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return rulesUsageError(cmd, err)
		}
		return nil
	}
}

// rulesUsageError prints a usage error as cobra does and exits 2. Status 1
// is a finding (a problem in the rules, a failed case, a decision that
// would change), so a script must not read a mistyped command as one, nor
// as a pass.
func rulesUsageError(cmd *cobra.Command, err error) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "Error:", err)
	return rulesExit(cmd, 2)
}

// rulesValidate implements `rules validate FILE` and returns the exit code.
// Approvals that have expired at now or expire within 30 days are warned
// about on stderr; they do not change the exit code.
func rulesValidate(stdout, stderr io.Writer, file string, now time.Time) int {
	r, ok := rulesLoad(stderr, file)
	if !ok {
		return 1
	}
	noun := "merchants"
	if r.Merchants() == 1 {
		noun = "merchant"
	}
	fmt.Fprintf(stdout, "%s: ok (version %d, %d %s, digest %s)\n", file, r.Version(), r.Merchants(), noun, r.Digest()[:12])
	for _, w := range r.ApprovalWarnings(file, now) {
		fmt.Fprintln(stderr, "warning:", w)
	}
	return 0
}

// rulesTest implements `rules test FILE CASES...` and returns the exit
// code. Cases without a date are decided at now. Every file is checked
// before any case runs, so a broken file is not mistaken for a pass.
func rulesTest(stdout, stderr io.Writer, file string, caseFiles []string, now time.Time) int {
	r, ok := rulesLoad(stderr, file)
	var cases []rules.Case
	for _, cf := range caseFiles {
		cs, err := rules.LoadCases(cf)
		if err != nil {
			rulesPrintError(stderr, err)
			ok = false
		}
		cases = append(cases, cs...)
	}
	if !ok {
		return 1
	}
	failed := 0
	for _, c := range cases {
		c.Order.User, c.Order.Merchant = caseIdentity(c.Order.Merchant)
		res := r.Run(c, now)
		if !res.Passed {
			failed++
		}
		fmt.Fprintln(stdout, res)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(cases)-failed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// caseIdentity is who the gateway sees when a case's merchant is the user
// name of a caller of the default dialect (Klarna, whose user names are the
// merchant id, '_' and a suffix): the user name (digitalshop_web), by which
// the rules look a merchant up first, and the merchant id it starts with
// (digitalshop), by which they look it up next. The dialect's own reading
// of the credentials makes the split, so that rules test and the gateway
// cannot disagree on whose entry applies. A name that is no user name (one
// with a colon, such as the key:... merchant of an API key) is the
// merchant itself.
func caseIdentity(name string) (user, merchant string) {
	d, ok := psp.Lookup(psp.Default)
	if !ok || strings.Contains(name, ":") {
		return "", name
	}
	cred := base64.StdEncoding.EncodeToString([]byte(name + ":"))
	id, err := d.Identity(http.Header{"Authorization": {"Basic " + cred}})
	if err != nil {
		return "", name
	}
	return id.User, id.Merchant
}

// rulesLoad loads a rules file, printing its problems to stderr.
func rulesLoad(stderr io.Writer, file string) (*rules.Rules, bool) {
	r, err := rules.Load(file)
	if err != nil {
		rulesPrintError(stderr, err)
		return nil, false
	}
	return r, true
}

// rulesPrintError prints a file's problems one per line, or the error
// that kept it from being read.
func rulesPrintError(w io.Writer, err error) {
	var ps *rules.Problems
	if !errors.As(err, &ps) {
		fmt.Fprintln(w, err)
		return
	}
	for _, p := range *ps {
		fmt.Fprintln(w, p)
	}
}
