#!/bin/sh
# acme-dns-hook-nsupdate.sh - an [acme] dns_hook for derper: publishes the
# dns-01 TXT record with an RFC 2136 dynamic update (nsupdate from Debian's
# bind9-dnsutils), signed with a TSIG key.
#
#   derper.ini:  [acme]
#                dns_hook = /usr/local/lib/derper/acme-dns-hook-nsupdate.sh
#
# derper runs it as:  <hook> add|remove <record name> <value>
# and treats exit code 0 as done, anything else as a failed attempt; it
# kills the hook after [acme] dns_hook_timeout and then waits (at most
# dns_propagation_timeout) until the record is visible.
#
# Settings (environment of derper.service, e.g. a drop-in with
# Environment=..., or edit the defaults below):
#   NSUPDATE_SERVER   primary name server of the zone   (default: from SOA)
#   NSUPDATE_KEY      TSIG key file for nsupdate -k     (default: /etc/derper/tsig.key)
#   NSUPDATE_TTL      TTL of the record                 (default: 60)
set -eu

verb=${1:?add or remove}
name=${2:?record name}
value=${3:-}
server=${NSUPDATE_SERVER:-}
key=${NSUPDATE_KEY:-/etc/derper/tsig.key}
ttl=${NSUPDATE_TTL:-60}

case "$verb" in
add) [ -n "$value" ] || { echo "$0: add needs a value" >&2; exit 2; }
	line="update add $name. $ttl IN TXT \"$value\"" ;;
remove) line="update delete $name. IN TXT" ;;
*) echo "$0: unknown verb '$verb' (add or remove)" >&2; exit 2 ;;
esac

{
	[ -n "$server" ] && echo "server $server"
	echo "$line"
	echo "send"
} | nsupdate -k "$key"
