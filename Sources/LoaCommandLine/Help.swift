import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

// The usage text and each command's help.
extension LoaCLI {
    static let usage = """
        loa: bulk SMS campaign dispatcher

        usage: loa <command> [options]

        commands:
          daemon --config FILE             run the daemon in the foreground until SIGTERM/SIGINT
          check --config FILE [CAMPAIGN…]  validate config, campaign files, templates and segments; send nothing
          campaign submit FILE             submit a campaign file to the running daemon
          campaign list                    list campaigns
          campaign show ID                 show a campaign's counts per state and carrier
          campaign rejects ID [--csv FILE] every row that will not be sent, with file, line, value and reason
          campaign pause|resume|cancel ID  hold, continue, or stop a campaign (cancel: queued → cancelled)
          campaign approve|reject ID [--comment TEXT]
                                           decide on a campaign pending approval (not your own)
          campaign test-send ID NUMBER…    send the rendered slogans to 1-5 proof numbers, before approval
          preview CAMPAIGN [--sample N]    render samples and count recipients, rejects and SMS parts; sends nothing
          optout add|remove NUMBER…|--file FILE
                                           the global opt-out list: numbers on it are never sent to
          tail [-f] [--cluster] [--campaign ID] [--carrier C] [--event E] [--status S] [--since T] [--json] [-n N]
                                           print the delivery log, one readable line per event
          carriers                         each carrier's rate, current rate and requests in flight
          status                           this node, its lease's epoch and whether it holds it; the cluster's nodes
          users add|remove|list|passwd     users and their roles (admin); passwords stored as Argon2id
          tokens create|revoke|list        per-user API tokens for the CLI (LOA_TOKEN) and scripts (admin)
          audit [--csv FILE] [filters]     the audit trail: who did what, when, from where
          report ID [--csv FILE] [--html FILE]
                                           one row per recipient (CSV), or a one-page HTML report with charts
          gateway-sim [--port N] [--seed N] …
                                           a carrier gateway simulator (Kannel, Jasmin, generic JSON)
                                           with faults and receipts, for demos, benchmarks and tests
          version                          print the version

        Every command takes --help. Client commands find the daemon through --config FILE
        (default: $LOA_CONFIG, else /etc/loa/loa.json). Results go to stdout; problems to stderr as
        `loa: error: …` (warnings `loa: warning: …`). --no-color, NO_COLOR (any value) or TERM=dumb turn
        colour and cursor control off.
        They act as the user whose token is in $LOA_TOKEN (loa tokens create), else as the admin with
        the config's api_token.
        """

    static let help: [String: String] = [
        "gateway-sim": GatewaySim.help,
        "version": """
            usage: loa version

            Prints Loa's version.
            """,
        "users": """
            usage: loa users add NAME --role ROLE [--password-file FILE] [--config FILE]
                   loa users passwd NAME [--password-file FILE] [--config FILE]
                   loa users remove NAME [--config FILE]
                   loa users unlock NAME [--config FILE]
                   loa users list [--json] [--config FILE]

            Users of the operator API, each with one role: viewer (reads), operator (pause, resume, opt-outs,
            carriers), planner (creates and submits campaigns), approver (approves or rejects others' campaigns,
            test-sends, cancels, reads the audit trail), admin (users and tokens; everything). Runs through the
            daemon as an admin (the config's api_token, or an admin's LOA_TOKEN); passwd also as the user
            themselves. The password (at least 10 characters) comes from --password-file (its first line), else
            is asked on the terminal without echo, else read from stdin's first line; it is stored only as a
            libsodium Argon2id string. remove revokes the user's tokens and ends their console sessions.
            unlock ends a console login lock (after repeated wrong passwords) before its time.
            """,
        "tokens": """
            usage: loa tokens create --user NAME [--name LABEL] [--config FILE]
                   loa tokens revoke ID [--config FILE]
                   loa tokens list [--user NAME] [--json] [--config FILE]

            API tokens per user, for the CLI (export LOA_TOKEN=…) and scripts (Authorization: Bearer …).
            create prints the token once on stdout; the daemon keeps only its hash. revoke ends it at once
            (its requests get 401). list shows ids, users, labels and dates, never a token. Admin only.
            """,
        "audit": """
            usage: loa audit [--user U] [--action A] [--campaign ID] [--since TIME] [--until TIME]
                             [--csv FILE] [--config FILE]

            The audit trail, oldest first: time, user, address, action, campaign and what changed (JSON).
            Actions: campaign.create|replace|discard|submit|approve|reject|pause|resume|cancel|test-send,
            campaign.approve-refused, optout.add|remove, carrier.resume, user.add|remove|passwd,
            token.create|revoke, auth.failed (no, wrong or revoked token), auth.forbidden (role too small).
            --csv writes a new 0600 file. Approvers and admins may read it; nothing in Loa can change it.
            """,
        "daemon": """
            usage: loa daemon --config FILE [--allow-shared-data-dir]

            Runs Loa in the foreground (for systemd). Opens the store in the config's data_dir (a relative
            data_dir is relative to the config file's directory). Refuses to start when group or others have
            any permission on data_dir, delivery.log or loa.db (they hold phone numbers: chmod 700 / 600),
            unless --allow-shared-data-dir is given, which starts with a warning per path. Listens on
            listen.address:listen.port (default 127.0.0.1:8780) for receipts and the operator API, and sends
            running campaigns through the configured carriers. SIGTERM/SIGINT: drain in-flight sends up to
            drain_seconds and exit 0; a second signal exits at once. SIGHUP: reopen the delivery log.
            """,
        "check": """
            usage: loa check --config FILE [--allow-rejects] [--allow-shared-data-dir] [CAMPAIGN_FILE…]

            Validates the config and each campaign file with its templates and segments, without sending or
            touching the store. Exit 0 when all is well; else exit 1 and one line per problem:
              file:line: field: reason
            Prints the data directory the config resolves to. A data directory (or delivery.log, loa.db) that
            group or others may read is a problem, as the daemon refuses it; --allow-shared-data-dir makes
            it a warning, as for the daemon.
            Rows that would be rejected (bad numbers, ragged rows) are problems too; --allow-rejects still
            lists them but exits 0 when they are the only problems.
            """,
        "campaign": """
            usage: loa campaign submit FILE [--replace] [--config FILE]
                   loa campaign list [--json] [--config FILE]
                   loa campaign show ID [--json] [--watch [--timeout SECONDS]] [--no-color] [--config FILE]
                   loa campaign rejects ID [--csv FILE] [--config FILE]
                   loa campaign preview ID [--json] [--config FILE]
                   loa campaign pause|resume|cancel ID [--config FILE]
                   loa campaign discard ID [--config FILE]
                   loa campaign approve|reject ID [--comment TEXT] [--config FILE]
                   loa campaign test-send ID NUMBER… [--config FILE]

            submit: checks the campaign file, creates the campaign on the daemon, streams its exclusion files
            and then each segment to it (never held in memory), and commits it; the daemon starts sending at
            its start time. A failed upload discards the half-loaded campaign, and so does SIGTERM or SIGINT
            (Ctrl-C) before the commit: the upload stops, stderr says so, exit 143 or 130.
            show: the campaign's counts, progress (rounded down: 100.0% only when every recipient is final), times
            in its time zone, the end estimated from the rate measured over the last minute, and STALLED with the
            reason (breaker-open, auth-refused, carrier-paused, throttled, outside-send-window, campaign-paused,
            not-moving) when nothing is leaving. --watch redraws every second until the campaign ends; a daemon
            that stops answering (a restart) gets a notice on stderr and the watch goes on, up to --timeout
            SECONDS without an answer if given (then exit 1).
            discard: removes a campaign still `loading` (a submit that was cut off), with its rows.
            With two-person approval (config `approval.required`, on by default) a submitted campaign waits in
            `pending-approval` and sends nothing until an approver other than its submitter approves it.
            approve / reject: an approver's decision, with an optional comment kept in the audit trail; a
            rejected campaign's queued messages are cancelled.
            --replace: submit a changed version (slogan, segments) of a campaign that has sent nothing yet
            (pending-approval, rejected, or approved and before its start): the old one is dropped, and the new
            one needs a new approval.
            test-send: the campaign's first rendered messages to 1-5 proof numbers (your own phone), through the
            real carriers, as a campaign of their own `ID--test-N` that counts nothing against this one.
            pause: nothing more is sent until resume (requests in flight finish); the deadline still applies.
            cancel: queued messages end `cancelled` (reported, never deleted); in-flight requests finish.
            preview: the totals `loa preview` prints for the campaign's files, as the daemon counted them when
            the segments were uploaded (recipients, duplicates, opted out, excluded, rejected by reason, per
            carrier, network and ward, SMS parts, encodings) and the first rendered messages; --json as the API
            gives them (GET /api/v1/campaigns/ID/preview).
            rejects: every segment row that will not be sent (rejected, duplicate, opted out, excluded) as CSV
            (file,line,value,reason,detail) on stdout (control characters shown escaped) or into a new 0600 file
            (raw values). CSV cells beginning with = + - @ TAB CR or ' get a leading ' (drop one to recover them).
            """,
        "preview": """
            usage: loa preview CAMPAIGN_FILE [--sample N] [--json] [--config FILE]

            Reads the campaign's templates, exclusion files and segments exactly as a submit would, without
            sending or touching the store, and prints N rendered sample messages (default 5) with their
            encoding and SMS parts, then the totals: recipients accepted, rejected by reason, duplicates,
            excluded, per carrier and per network, total SMS parts (the cost), and what the `ascii` and
            `unicode` encodings would cost instead. With --config, routing follows the config's carriers.
            Shows a progress bar on a terminal, plain progress lines otherwise. With a config whose daemon is
            reachable, numbers on its global opt-out list are counted too. --json prints the totals and samples
            as one JSON object, in the shape of `loa campaign preview ID --json` (the daemon's count).
            """,
        "optout": """
            usage: loa optout add NUMBER… [--file FILE] [--config FILE]
                   loa optout remove NUMBER… [--file FILE] [--config FILE]

            Adds numbers to (or removes them from) the daemon's global opt-out list. A number on the list is
            never sent to: campaigns submitted later mark it `suppressed`, and queued messages to it in running
            campaigns are suppressed just before they would be sent. --file reads one number per line.
            """,
        "report": """
            usage: loa report ID [--csv FILE] [--html FILE] [--config FILE]

            --csv: one row per recipient (message id, recipient, carrier, final state, reason, attempts, time of
            the last change, segment, line, breakdown group, gateway id), written to a new 0600 file. Cells
            beginning with = + - @ TAB CR or ' get a leading ' against spreadsheet formulas (drop one to recover).
            --html: one self-contained page (no external assets) with inline SVG charts: deliveries over time
            per carrier, final states, failure reasons, and a breakdown by the segments' breakdown column
            (`breakdown_column`, default `ward`).
            """,
        "status": """
            usage: loa status [--json] [--config FILE]

            The daemon's node and store; on PostgreSQL, the epoch of its lease and whether it holds it (a node
            without its lease claims and sends nothing, and /readyz says not ready), and every node of the
            cluster with its epoch and whether its lease is alive.
            """,
        "carriers": """
            usage: loa carriers [--json] [--config FILE]
                   loa carriers resume NAME [--config FILE]

            Each carrier's configured rate, current rate (requests started per second over the last 10 s),
            request limit, requests in flight, batch fill, SMS parts the gateway accepted, and its state: the
            breaker with its cause, a refusal of Loa's credentials, a pause after identical permanent answers.
            `resume NAME` ends such a pause (the messages that waited are sent again). With several daemons on
            one PostgreSQL: a table per carrier with each live node's share of the limits, rate, requests in
            flight and messages sent, and the cluster's total.
            """,
        "tail": """
            usage: loa tail [-f] [--cluster] [--campaign ID] [--carrier C] [--event E] [--status S] [--since TIME]
                            [--json] [-n N] [--no-color] [--config FILE]

            Prints the delivery log (data_dir/delivery.log). -f keeps following it (across logrotate).
            --campaign, --carrier, --event (sending, accepted, retry, receipt, …), --status (delivered, failed,
            …) and --since (ISO 8601 with offset) keep matching events only. --json prints the raw JSON lines.
            -n N starts with the last N matching lines (default: all). On a terminal lines are aligned and
            colored by status, unless --no-color, NO_COLOR (any value) or TERM=dumb. A --campaign the daemon
            does not know is an error.
            --cluster: every node's lines (several daemons on one PostgreSQL), each once, in the cluster's event
            order, through the daemon's API (GET /api/v1/log/stream?scope=cluster), from the oldest line the
            database keeps (store.cluster_log_days), or its last N matching lines with -n N; with -f it keeps
            following, and says on stderr when lines it had not read yet were deleted by that retention. Not on
            SQLite (a daemon there is a cluster of one: plain loa tail).
            """,
    ]
}
