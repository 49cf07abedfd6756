#!/usr/bin/env bash
# The mutation check: does the suite catch a break of each invariant that matters?
#
# Each mutation below breaks one invariant with a one-line change (dedup, opt-out at claim, at-most-once after
# a crash, receipts forward-only, the deadline, send windows, the rate, receipt secrets and the API token, SMS
# part counting, the frequency cap, retry times). For each, the script applies it to a scratch copy of the tree
# (never to this checkout), builds, runs the tests named with it (`swift test --filter`; `--full` runs the whole
# suite instead), and records:
#   caught        the tests failed
#   SURVIVED      the tests passed: the suite does not guard this invariant
#   build-failed  the mutation does not compile (the list needs fixing; not a catch)
#   timeout       the tests ran past the per-mutation limit (not an assertion; fix the test)
#   no-tests      the filter matched no test (the list has rotted)
#   not-found     the original text is not in the file exactly once (the list has rotted)
# A baseline run of the same tests on the unmutated copy must pass first. Exit status 0 only when every
# mutation was caught.
#
# Usage: Tests/mutation.sh [--full] [--only ID[,ID...]] [--list] [--timeout SECONDS] [--work DIR]
#   --work   scratch directory (default: $TMPDIR/loa-mutation-<uid>-<hash of this checkout>); kept between runs so
#            its .build is reused: the first run builds everything once, later runs only what changed.
#   --timeout  limit for each build and each test run (default 600 s); the whole run is bounded by
#            (1 + mutations) x 2 x this.
# An interrupted run may leave one file of the scratch copy mutated: the next run copies it back first.
set -uo pipefail
# One compound command, read whole before it runs: editing this file during a run cannot change that run.
{

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FULL=0
ONLY=""
LIST=0
LIMIT=600
WORK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --full) FULL=1 ;;
        --only) ONLY="$2"; shift ;;
        --list) LIST=1 ;;
        --timeout) LIMIT="$2"; shift ;;
        --work) WORK="$2"; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "mutation.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$WORK" ] || WORK="${TMPDIR:-/tmp}/loa-mutation-$(id -u)-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
case "$WORK/" in "$ROOT/"*) echo "mutation.sh: the scratch directory must be outside the checkout" >&2; exit 2 ;; esac

IDS=(); FILES=(); FROMS=(); TOS=(); FILTERS=()
# m ID FILE ORIGINAL REPLACEMENT FILTER: ORIGINAL is a fixed string that must occur exactly once in FILE (it may
# span lines to pin down which occurrence: only one line changes).
m() { IDS+=("$1"); FILES+=("$2"); FROMS+=("$3"); TOS+=("$4"); FILTERS+=("$5"); }

# Dedup: a number is in a campaign once, however many rows (and segments) name it.
m dedup-index Sources/LoaStore/SQLite/Schema.swift \
  'CREATE UNIQUE INDEX messages_dedup ON messages(campaign_id, phone);' \
  'CREATE INDEX messages_dedup ON messages(campaign_id, phone);' \
  'messyCampaignThroughKannel'
m dedup-preview Sources/LoaCommandLine/Scan.swift \
  'guard seen.insert(phone).inserted else { duplicates += 1; continue }' \
  'guard seen.insert(phone).inserted || true else { duplicates += 1; continue }' \
  'previewCountsTheSampleWithoutAStore|checkAndHelp'
# Opt-outs and exclusions: a number on either list is not sent at ingest, nor at claim when it joined later.
m optout-ingest Sources/LoaStore/SQLite/Ingest.swift \
  'let state: MessageState = suppression == nil ? .queued : .suppressed' \
  'let state: MessageState = suppression == nil ? .queued : .queued' \
  'optOutsAndExclusionsAtIngestAndBeforeSending'
# The global list is read again just before sending, exclusion list or not.
m optout-claim-global Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  '(most campaigns have no opt-outs yet).
        var anySuppression = false
        try statement("SELECT EXISTS(SELECT 1 FROM suppressions) OR EXISTS(SELECT 1 FROM campaign_exclusions' \
  '(most campaigns have no opt-outs yet).
        var anySuppression = false
        try statement("SELECT EXISTS(SELECT 1 FROM campaign_exclusions' \
  'ClaimGuardTests'
m optout-claim Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  'if anySuppression, let reason = try suppressionReason(campaign: campaign, phone: m.phone) {' \
  'if anySuppression && false, let reason = try suppressionReason(campaign: campaign, phone: m.phone) {' \
  'optOutsAndExclusionsAtIngestAndBeforeSending|ClaimGuardTests'
m optout-reply Sources/LoaStore/SQLite/OptOuts.swift \
  'WHERE campaign_id IN (SELECT id FROM campaigns) AND phone = ? AND state = \(MessageState.queued.rawValue)' \
  'WHERE campaign_id IN (SELECT id FROM campaigns) AND phone = ? AND state = \(MessageState.queued.rawValue) AND 0' \
  'optOutReplyUsesTheCampaignPhoneIndex'
# At most once: a claim is committed before the request leaves (fresh messages: one claim record naming them;
# others: their rows `sending`); after a crash, what a claim record names and was never settled, and `sending`
# rows, become `unknown`, never `queued` again.
m claim-marks-sending Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  'UPDATE messages SET state = \(MessageState.sending.rawValue), attempts = attempts + 1, updated_at = ? WHERE id IN (?' \
  'UPDATE messages SET state = \(MessageState.queued.rawValue), attempts = attempts + 1, updated_at = ? WHERE id IN (?' \
  'retriesAreClaimedAgainExactlyOnce'
m claim-record Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  'if !named.isEmpty {' \
  'if named.isEmpty {' \
  'aCrashTurnsExactlyTheUnsettledOnesUnknown'
m crash-requeues Sources/LoaStore/SQLite/Recovery.swift \
  '.run([.int(Int64(MessageState.unknown.rawValue)), .text(detail), .int(now), .int(fresh ? 1 : 0), .int(id)])' \
  '.run([.int(Int64(MessageState.queued.rawValue)), .text(detail), .int(now), .int(fresh ? 1 : 0), .int(id)])' \
  'crashLeavesSendingAsUnknownAndTheLogWhole|aCrashTurnsExactlyTheUnsettledOnesUnknown'
m crash-no-recovery Sources/LoaStore/SQLite/Recovery.swift \
  'guard inFlight > 0 || maxClaim > 0 else { return }' \
  'guard inFlight > 1 || maxClaim > 1 else { return }' \
  'linesOfATransactionThatNeverCommittedAreCut'
m drain-requeues Sources/LoaCore/Lifecycle/MessageState.swift \
  'case (.sending, .crashRecovered): return .unknown' \
  'case (.sending, .crashRecovered): return .queued' \
  'MessageLifecycleTests'
# Receipts only move forward.
m receipt-reopens-final Sources/LoaCore/Lifecycle/MessageState.swift \
  'case (.queued, .receipt(let r)), (.sending, .receipt(let r)), (.sent, .receipt(let r)), (.unknown, .receipt(let r)):' \
  'case (.queued, .receipt(let r)), (.sending, .receipt(let r)), (.sent, .receipt(let r)), (.unknown, .receipt(let r)), (.failed, .receipt(let r)):' \
  'MessageLifecycleTests'
m receipt-repeat Sources/LoaStore/SQLite/Receipts.swift \
  'guard cur.receiptsSeen & bit == 0 else { return .duplicate }' \
  'guard cur.receiptsSeen & bit == 0 || true else { return .duplicate }' \
  'intermediateReceiptsAreEventsInAnyOrder'
# Deadline: nothing is claimed at or after it; queued messages expire at it.
m deadline-claim Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  'guard ctx.now < until && ctx.now < deadline else { return [] }' \
  'guard ctx.now < until && ctx.now <= deadline else { return [] }' \
  'ClaimGuardTests'
m deadline-expire Sources/LoaStore/SQLite/CampaignLifecycle.swift \
  "WHERE state IN ('scheduled', 'running', 'paused') AND deadline_at <= ?" \
  "WHERE state IN ('scheduled', 'running', 'paused') AND deadline_at < ?" \
  'deadlineExpiresQueuedAndCompletes|deadlineExpiresAPausedCampaign'
# The deadline at the handset: no more handed over than the gateway can pass on before it.
m handoff-hold Sources/LoaCore/Dispatch/DispatchPlan.swift \
  'if room == 0 { return nil }' \
  'if room == 0 { room = .max }' \
  'theHandoffRoomLimitsClaimsUntilThePasserOnCatchesUp|nothingReachesAHandsetAfterTheDeadline'
m handoff-outstanding Sources/LoaCore/Limits/HandoffWindow.swift \
  'let counted = pace == nil ? outstanding.count - restored.count : outstanding.count' \
  'let counted = 0' \
  'HandoffWindowTests'
m handoff-restart Sources/LoaDaemon/Dispatcher.swift \
  'initial.carriers[carrier]?.handoff?.restore(list.map { (id: $0.id, at: $0.at) })' \
  '_ = (carrier, list)' \
  'aRestartRemembersWhatTheGatewayHolds'
# Windows: nothing is sent outside a campaign's daily windows.
m window-edge Sources/LoaCore/Scheduling/SendWindows.swift \
  'return windows.contains { w in
            w.start < w.end ? (sod >= w.start && sod < w.end)' \
  'return windows.contains { w in
            w.start < w.end ? (sod >= w.start && sod <= w.end)' \
  'SendWindowsTests'
m window-claim Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  'guard ctx.now < until && ctx.now < deadline else { return [] }' \
  'guard ctx.now <= until && ctx.now < deadline else { return [] }' \
  'ClaimGuardTests'
m window-dispatch Sources/LoaCore/Dispatch/DispatchPlan.swift \
  '$0.queuedOn.contains(name) && $0.windows.isOpen(at: now)' \
  '$0.queuedOn.contains(name)' \
  'aWindowOpeningWakesTheDispatcherExactlyAtItsStart|windowOpensClosesSharesHold'
m window-wake Sources/LoaCore/Dispatch/DispatchPlan.swift \
  'wake = min(wake, max(now + 1, c.windows.nextOpen(after: now)))' \
  'wake = min(wake, now + settings.lookAgainMillis)' \
  'aWindowOpeningWakesTheDispatcherExactlyAtItsStart'
# The plan: batches fill, request rates hold, the global cap is shared, nothing claimed at the deadline.
m plan-deadline Sources/LoaCore/Dispatch/DispatchPlan.swift \
  '$0.running && $0.deadlineAt > now' \
  '$0.running && $0.deadlineAt >= now' \
  'nothingIsClaimedAtOrAfterTheDeadline'
m plan-batch-sizes Sources/LoaCore/Dispatch/DispatchPlan.swift \
  'let n = (count + batch - 1) / batch' \
  'let n = batch > 0 ? count : 1' \
  'batchesFillToTheBatchSizeUnderARequestRate|batchSizesAreEvenAndNeverAboveTheMaximum'
m plan-requests-used Sources/LoaCore/Dispatch/DispatchPlan.swift \
  'used: (turn.used, turn.requests)' \
  'used: (turn.used, 0)' \
  'aRequestRateHoldsForOneMessagePerRequest|batchesFillToTheBatchSizeUnderARequestRate'
m plan-global-order Sources/LoaCore/Dispatch/DispatchPlan.swift \
  'let first = carriers.isEmpty ? 0 : rounds % carriers.count' \
  'let first = 0' \
  'theGlobalLimitIsSharedAcrossCarriers'
m plan-paused-carrier Sources/LoaCore/Dispatch/DispatchPlan.swift \
  'if s.identical.isPaused { return nil }' \
  'if s.identical.isPaused && s.identical.threshold < 0 { return nil }' \
  'aPausedCarrierGetsNothingUntilResumed'
# Rate: the token bucket refills at the rate, a take costs its tokens, the in-flight cap holds.
m rate-refill Sources/LoaCore/Limits/TokenBucket.swift \
  'tokens = min(Double(burst), tokens + Double(now - last) * rate / 1000)' \
  'tokens = min(Double(burst), tokens + Double(now - last) * rate / 500)' \
  'TokenBucketTests'
m rate-take-free Sources/LoaCore/Limits/TokenBucket.swift \
  'tokens -= Double(got)' \
  'tokens -= Double(got) / 2' \
  'TokenBucketTests'
m inflight-cap Sources/LoaCore/Limits/TokenBucket.swift \
  'let room = maxInFlight - inFlight' \
  'let room = maxInFlight - inFlight / 2' \
  'TokenBucketTests'
m parts-charge Sources/LoaCore/Dispatch/DispatchPlan.swift \
  'let parts = turn.carrier.rateInSegments ? turn.extraParts : 0' \
  'let parts = turn.carrier.rateInSegments ? 0 : 0' \
  'longMessagesPayForEveryPart'
# The boundary: the daemon checks every submission with the campaign rules; a stored campaign that breaks them
# fails alone; an upload or commit bound to a discarded campaign's generation reaches no new one.
m rules-at-the-server Sources/LoaDaemon/HTTP/OperatorRoutes.swift \
  'let issues = CampaignRules.check(sub, knownCarriers: config.carriers.map(\.name))' \
  'let issues = CampaignRules.check(sub, knownCarriers: config.carriers.map(\.name)).filter { $0.field == "id" }' \
  'checkAndServerRefuseTheSameBadCampaignAlike'
m failed-campaign-sends Sources/LoaStore/SQLite/CampaignLifecycle.swift \
  'guard issues.isEmpty else {' \
  'guard issues.isEmpty || true else {' \
  'StoreHardeningTests|aStoredCampaignThatBreaksTheRulesFailsAlone'
m upload-generation Sources/LoaStore/SQLite/Ingest.swift \
  'guard let generation else { return }' \
  'guard let generation, generation == 0 else { return }' \
  'StoreHardeningTests|anUploadCannotOutliveItsCampaign'
# Pause: a paused campaign sends nothing until it is resumed.
m paused-sends Sources/LoaDaemon/Dispatcher.swift \
  'running: c.state == .running' \
  'running: c.state != .loading' \
  'pauseResumeCancel'
# Secrets: a receipt, reply or API request with a wrong secret or token of the right length is refused.
m receipt-secret-length Sources/LoaDaemon/HTTP/ReceiptRoutes.swift \
  'guard let k = query["k"], Self.constantTimeEqual(Array(k.utf8), secret) else {' \
  'guard let k = query["k"], k.utf8.count == secret.count else {' \
  'wrongSecretsOfTheRightLengthAreRefused'
m secret-last-byte Sources/LoaDaemon/HTTP/Service.swift \
  'diff |= UInt(x ^ y)' \
  'diff |= i == a.count - 1 ? 0 : UInt(x ^ y)' \
  'wrongSecretsOfTheRightLengthAreRefused'
m api-token-length Sources/LoaDaemon/HTTP/Service.swift \
  'return Self.constantTimeEqual(Array(h.dropFirst(7).utf8), token)' \
  'return h.utf8.count - 7 == token.count' \
  'wrongSecretsOfTheRightLengthAreRefused'
# Console sessions: a change through a session needs its CSRF token; a locked name stays locked; one address trying
# many names is throttled; an idle session ends; X-Forwarded-For counts only from a trusted proxy; a symbolic link
# does not lead out of the console's directory; password checks are bounded.
m session-csrf Sources/LoaDaemon/HTTP/RouteTable.swift \
  'if let session, !session.csrfMatches,' \
  'if let session, session.principal.name == "never-a-user", !session.csrfMatches,' \
  'SessionRouteTests|aSessionIsTheUsersCallerAndEveryChangeNeedsItsCSRFToken'
m login-lock Sources/LoaCore/Access/LoginThrottle.swift \
  'if let until = lockedUntil(user: user, now: now) { return .locked(until: until) }' \
  'if let until = lockedUntil(user: user, now: now), until < 0 { return .locked(until: until) }' \
  'LoginThrottleTests|aLockedOutUserStaysLockedUntilAnAdminUnlocks'
m login-address Sources/LoaCore/Access/LoginThrottle.swift \
  'guard a.bucket.take(upTo: 1, now: now) == 1 else' \
  'guard a.bucket.take(upTo: 1, now: now) >= 0 else' \
  'LoginThrottleTests'
m session-idle Sources/LoaDaemon/Auth/Sessions.swift \
  'now - s.lastUsed < idleMillis &&' \
  's.lastUsed >= 0 &&' \
  'SessionRouteTests'
m forwarded-untrusted Sources/LoaDaemon/HTTP/SessionRoutes.swift \
  'guard !proxies.isEmpty, proxies.contains(head.remoteAddress),' \
  'guard !proxies.isEmpty,' \
  'SessionRouteTests'
m forwarded-ignored Sources/LoaDaemon/HTTP/RouteTable.swift \
  'let head = withClientAddress(head)' \
  'let head = withClientAddress(head, proxies: [])' \
  'theConsoleBehindNginxOverTLS|oneAddressTryingManyNamesIsThrottled'
m console-symlink Sources/LoaDaemon/HTTP/ConsoleRoutes.swift \
  'real.hasPrefix(dir + "/"),' \
  'real.hasPrefix("/"),' \
  'theConsoleIsServedWithItsHeadersAndNothingElse'
m login-slots Sources/LoaDaemon/Auth/Sessions.swift \
  'guard n < Self.hashingSlots else { return false }' \
  'guard n < 1000 else { return false }' \
  'aFloodOfLoginsIsBoundedAndTheDaemonAnswersMeanwhile'
# Part counting: 160/153 GSM-7 septets, 70/67 UCS-2 units, a surrogate pair is two units.
m parts-gsm-capacity Sources/LoaCore/Text/SMSText.swift \
  'let capacity = gsm ? 153 : 67' \
  'let capacity = gsm ? 160 : 67' \
  'SMSTextTests'
m parts-single Sources/LoaCore/Text/SMSText.swift \
  'if units <= single { return SegmentInfo(' \
  'if units < single { return SegmentInfo(' \
  'SMSTextTests'
m parts-surrogate Sources/LoaCore/Text/SMSText.swift \
  'c = s.value > 0xFFFF ? 2 : 1' \
  'c = 1' \
  'SMSTextTests'
# Frequency cap: at most N messages to a number per rolling window, across campaigns.
m fcap-count Sources/LoaCore/Scheduling/FairShare.swift \
  'guard inWindow.count >= maxPerWindow else { return .send }' \
  'guard inWindow.count > maxPerWindow else { return .send }' \
  'ContactPolicyTests|FrequencyCapTests'
m fcap-deadline Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  'if until >= deadline {' \
  'if until > deadline {' \
  'ClaimGuardTests'
m fcap-record Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  'try statement("INSERT INTO contacts(phone, sent_at, message_id) VALUES(?, ?, ?)").run([.text(m.phone), .int(t), .int(m.id)])' \
  'try statement("INSERT INTO contacts(phone, sent_at, message_id) VALUES(?, ?, ?)").run([.text(m.phone), .int(0), .int(m.id)])' \
  'FrequencyCapTests'
# Retries wait for their time.
m retry-not-before Sources/LoaStore/SQLite/ClaimsAndOutcomes.swift \
  'AND id <= ? AND not_before > 0 AND not_before <= ? ORDER BY id LIMIT ?' \
  'AND id <= ? AND not_before > 0 AND not_before <= ? + 60000 ORDER BY id LIMIT ?' \
  'claimSendReceiveAndCounts'

if [ "$LIST" = 1 ]; then
    for i in "${!IDS[@]}"; do printf '%-22s %-45s %s\n' "${IDS[$i]}" "${FILES[$i]}" "${FILTERS[$i]}"; done
    exit 0
fi

# The selected mutations.
SEL=()
for i in "${!IDS[@]}"; do
    if [ -z "$ONLY" ] || [[ ",$ONLY," == *",${IDS[$i]},"* ]]; then SEL+=("$i"); fi
done
[ "${#SEL[@]}" -gt 0 ] || { echo "mutation.sh: no mutation named in --only '$ONLY' (see --list)" >&2; exit 2; }

# count FILE TEXT: how many times the fixed TEXT occurs in FILE.
count() { FROM="$2" perl -0777 -ne '$n = () = /\Q$ENV{FROM}\E/g; print $n' "$1"; }
# apply FILE FROM TO: replaces the one occurrence in place.
apply() { FROM="$2" TO="$3" perl -0777 -pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/' "$1"; }

# The scratch tree: this checkout's files as they are (committed or not), copied only where they differ so
# the scratch .build stays incremental; files gone from the checkout go from the copy too.
sync_tree() {
    mkdir -p "$WORK/tree"
    (cd "$ROOT" && find Package.swift Sources Tests Config Deploy -type f 2>/dev/null | grep -v '/\.build' | sort) > "$WORK/files"
    while IFS= read -r f; do
        if ! cmp -s "$ROOT/$f" "$WORK/tree/$f"; then mkdir -p "$WORK/tree/$(dirname "$f")"; cp -p "$ROOT/$f" "$WORK/tree/$f"; fi
    done < "$WORK/files"
    (cd "$WORK/tree" && find Package.swift Sources Tests Config Deploy -type f 2>/dev/null | sort) | comm -13 "$WORK/files" - |
        while IFS= read -r f; do rm -f "$WORK/tree/$f"; done
}

LOGS="$WORK/logs"
mkdir -p "$LOGS"
build() { (cd "$WORK/tree" && timeout --kill-after=20 "$LIMIT" swift build --build-tests) > "$1" 2>&1; }
# run_tests FILTER LOG: the status of `swift test` on the scratch build (124: past the limit).
run_tests() {
    local filter=() 
    [ "$FULL" = 1 ] || filter=(--filter "$1")
    (cd "$WORK/tree" && LOA_BIN="$(swift build --show-bin-path)/loa" timeout --kill-after=20 "$LIMIT" swift test --skip-build "${filter[@]}") > "$2" 2>&1
}
# How many Swift Testing tests a run ran (its summary line), empty if none was printed.
tests_run() { grep -aoE 'Test run with [0-9]+ tests?' "$1" | tail -1 | grep -oE '[0-9]+'; }
# The failed tests of a run, comma-separated.
failed_tests() { grep -aoE '✘ Test [A-Za-z0-9_]+\(' "$1" | sed 's/✘ Test //; s/($//' | sort -u | paste -sd, -; }

START=$(date +%s)
echo "mutation check: ${#SEL[@]} mutations, scratch tree $WORK/tree$([ "$FULL" = 1 ] && echo ', whole suite per mutation')"
sync_tree
echo "building the unmutated copy (the first run builds everything)..."
if ! build "$LOGS/baseline-build.log"; then
    echo "mutation.sh: the unmutated tree does not build; see $LOGS/baseline-build.log" >&2; exit 2
fi
# Baseline: every filter's tests pass on the unmutated tree (one run of all of them).
UNION=$(for i in "${SEL[@]}"; do echo "${FILTERS[$i]}"; done | tr '|' '\n' | sort -u | paste -sd'|' -)
echo "baseline: the tests of the list on the unmutated copy..."
if ! run_tests "$UNION" "$LOGS/baseline-test.log"; then
    echo "mutation.sh: tests fail without any mutation ($(failed_tests "$LOGS/baseline-test.log")); see $LOGS/baseline-test.log" >&2; exit 2
fi
echo "baseline passed ($(tests_run "$LOGS/baseline-test.log") tests, $(( $(date +%s) - START )) s)"

RESULTS=(); BY=(); SECS=()
caught=0; survived=0; errors=0
for i in "${SEL[@]}"; do
    id="${IDS[$i]}"; file="${FILES[$i]}"; t0=$(date +%s)
    result=""; by=""
    n=$(count "$ROOT/$file" "${FROMS[$i]}" 2>/dev/null || echo 0)
    if [ "$n" != 1 ]; then
        result="not-found"; by="the original text occurs $n times in $file"
    else
        cp -p "$ROOT/$file" "$WORK/original"
        apply "$WORK/tree/$file" "${FROMS[$i]}" "${TOS[$i]}"
        if cmp -s "$WORK/tree/$file" "$WORK/original"; then
            result="not-found"; by="the replacement changed nothing"
        elif ! build "$LOGS/$id-build.log"; then
            result="build-failed"; by="see $LOGS/$id-build.log"
        else
            run_tests "${FILTERS[$i]}" "$LOGS/$id-test.log"; rc=$?
            ran=$(tests_run "$LOGS/$id-test.log")
            if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then result="timeout"; by="past ${LIMIT} s"
            elif [ -z "$ran" ] || [ "$ran" = 0 ]; then result="no-tests"; by="the filter matched no test"
            elif [ "$rc" = 0 ]; then result="SURVIVED"; by="$ran tests passed"
            else result="caught"; by="$(failed_tests "$LOGS/$id-test.log")"
                grep -aq 'timed out after\|Time limit was exceeded' "$LOGS/$id-test.log" && by="$by (a timeout among the failures)"
            fi
        fi
        cp -p "$WORK/original" "$WORK/tree/$file"
    fi
    case "$result" in caught) caught=$((caught + 1)) ;; SURVIVED) survived=$((survived + 1)) ;; *) errors=$((errors + 1)) ;; esac
    RESULTS+=("$result"); BY+=("$by"); SECS+=("$(( $(date +%s) - t0 ))")
    printf '%-22s %-12s %4ss  %s\n' "$id" "$result" "${SECS[-1]}" "$by"
done

echo
printf '%-22s %-12s %5s  %s\n' mutation result secs "caught by (failed tests) / why"
for k in "${!SEL[@]}"; do
    printf '%-22s %-12s %5s  %s\n' "${IDS[${SEL[$k]}]}" "${RESULTS[$k]}" "${SECS[$k]}" "${BY[$k]}"
done
echo
echo "${#SEL[@]} mutations, $caught caught, $survived survived, $errors errors ($(( $(date +%s) - START )) s)"
[ "$survived" = 0 ] && [ "$errors" = 0 ]
exit
}
