#!/bin/sh
# Prints the kafka-acls.sh commands an operator runs for the per_client topic layout (ORDERS_TOPIC_LAYOUT):
#   deploy/kafka-acls.sh client <client_id> <principal>   what one client's principal may do
#   deploy/kafka-acls.sh service <principal> <relay-principal>   the service's and relay's reads by prefix
# Topic names are the defaults (ORDERS_TOPIC_*); set ORDERS_TOPIC_COMMANDS etc. if yours differ.
# Pipe the output to sh once checked; KAFKA_ACLS (default kafka-acls.sh) and BOOTSTRAP (default
# localhost:9092) say which tool and cluster.
set -eu
ACLS="${KAFKA_ACLS:-kafka-acls.sh} --bootstrap-server ${BOOTSTRAP:-localhost:9092}"
COMMANDS="${ORDERS_TOPIC_COMMANDS:-orders.commands}"
STATUS="${ORDERS_TOPIC_STATUS_CHANGED:-orders.status-changed}"
REJECTED="${ORDERS_TOPIC_COMMAND_REJECTED:-orders.command-rejected}"
case "${1:-}" in
client)
    client="$2" principal="$3"
    # The same alphabet as contracts.base.ClientId: a "." would let one client's name prefix another's.
    echo "$client" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9-]{0,63}$' || { echo "invalid client id: $client" >&2; exit 2; }
    echo "$ACLS --add --allow-principal User:$principal --operation Write --operation Describe --topic $COMMANDS.$client"
    echo "$ACLS --add --allow-principal User:$principal --operation Read --operation Describe --topic $STATUS.$client"
    echo "$ACLS --add --allow-principal User:$principal --operation Read --operation Describe --topic $REJECTED.$client"
    echo "$ACLS --add --allow-principal User:$principal --operation Read --group $client. --resource-pattern-type prefixed"
    ;;
service)
    service="$2" relay="$3"
    echo "$ACLS --add --allow-principal User:$service --operation Read --operation Describe --topic $COMMANDS. --resource-pattern-type prefixed"
    echo "$ACLS --add --allow-principal User:$service --operation Write --operation Describe --topic $STATUS. --resource-pattern-type prefixed"
    echo "$ACLS --add --allow-principal User:$service --operation Write --operation Describe --topic $REJECTED. --resource-pattern-type prefixed"
    echo "$ACLS --add --allow-principal User:$relay --operation Read --operation Describe --topic $STATUS. --resource-pattern-type prefixed"
    echo "$ACLS --add --allow-principal User:$relay --operation Read --operation Describe --topic $REJECTED. --resource-pattern-type prefixed"
    ;;
*)
    sed -n '2,7p' "$0" >&2
    exit 2
    ;;
esac
