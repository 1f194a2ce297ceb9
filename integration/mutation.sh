#!/bin/sh
# Mutation score of each domain package, measured with gremlins: each
# package's own tests are run against every mutant of its code. Not part of
# CI (it takes minutes per package); run it after changing a domain package
# and update the table in the README's Testing section.
#
#   integration/mutation.sh                    # every domain package
#   integration/mutation.sh ./internal/phone   # only these
#
# Needs gremlins (go install github.com/go-gremlins/gremlins/cmd/gremlins@latest)
# and MariaDB for the tests that open it directly, as for the
# other tests (MSGBROKER_TEST_MYSQL_DSN). GREMLINS_WORKERS sets the parallel
# mutants (default 1). GREMLINS_FLAGS passes more flags to gremlins unleash,
# e.g. to measure a large package a few files at a time:
#
#   GREMLINS_FLAGS="-E portal.*[.]go -E users[.]go" integration/mutation.sh ./internal/broker
#
# gremlins times a mutant out at --timeout-coefficient (default 3) times its
# coverage run, which the build cache can make a second long: pass e.g.
# GREMLINS_FLAGS="--timeout-coefficient 10" (60 for the broker), or most
# mutants are counted as timed out instead of killed.
#
# The EachDialect tests run on SQLite only here
# (MSGBROKER_TEST_ONLY_SQLITE=1, see storage/storagetest): a mutant of
# domain logic fails on either dialect, and a fresh MariaDB database per
# test per mutant would make a run take hours; CI runs both dialects.
set -euf # -f: the regexps in GREMLINS_FLAGS are not file globs
export MSGBROKER_TEST_ONLY_SQLITE=1
cd "$(dirname "$0")/.."

packages="$*"
if [ -z "$packages" ]; then
	packages="./internal/broker ./internal/certregistry ./internal/clientca ./internal/devicecrypto
		./internal/directory ./internal/keyring ./internal/phone ./internal/phpserial ./internal/sessions
		./internal/strictjson ./internal/tokens ./internal/certstore ./modules/verifier"
fi
gremlins=$(command -v gremlins || echo "$(go env GOPATH)/bin/gremlins")
if [ ! -x "$gremlins" ]; then
	echo "gremlins not found: go install github.com/go-gremlins/gremlins/cmd/gremlins@latest" >&2
	exit 1
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
printf '| package | killed | lived | not covered | timed out | efficacy | mutator coverage |\n'
printf '|---|---|---|---|---|---|---|\n'
status=0
for pkg in $packages; do
	log="$logs/$(echo "$pkg" | tr '/.' '__').log"
	if ! "$gremlins" unleash --workers "${GREMLINS_WORKERS:-1}" ${GREMLINS_FLAGS:-} "$pkg" >"$log" 2>&1; then
		status=1
	fi
	awk -v pkg="$pkg" '
		/^Killed:/     { gsub(",", ""); killed = $2; lived = $4; notcov = $7 }
		/^Timed out:/  { gsub(",", ""); timedout = $3 }
		/^Test efficacy:/    { eff = $3 }
		/^Mutator coverage:/ { cov = $3 }
		END {
			if (eff == "") { printf "| %s | gremlins failed, see below | | | | | |\n", pkg; exit }
			printf "| %s | %s | %s | %s | %s | %s | %s |\n", pkg, killed, lived, notcov, timedout, eff, cov
		}' "$log"
	grep -E '^ +(LIVED|NOT COVERED|TIMED OUT)' "$log" | sed "s|^ *|    $pkg: |" >>"$logs/survivors" || true
	if ! grep -q '^Test efficacy' "$log"; then
		tail -20 "$log" >&2
	fi
done
if [ -s "$logs/survivors" ]; then
	printf '\nSurvivors:\n'
	cat "$logs/survivors"
fi
exit $status
