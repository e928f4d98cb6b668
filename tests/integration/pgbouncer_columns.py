"""PgBouncer 1.18.0 admin console (db "pgbouncer") SHOW result layouts, as
Debian 12's pgbouncer 1.18.0-1 sends them: pgsluice's console must start
every SHOW with these columns, in this order, with these types.

COLUMNS[cmd] = ordered column names from RowDescription.
TYPES[cmd]   = the type OID for each column as sent in RowDescription
               (25=text, 23=int4, 20=int8, 1700=numeric, 17=bytea).
Every field: table OID 0, attnum 0, typmod -1, format 0 (text); typlen 4 for int4, 8 for int8,
-1 for text/numeric/bytea. CommandComplete tag for every SHOW is "SHOW".
SHOW STATE does not exist in 1.18 (ERROR 08P01 "invalid command 'SHOW STATE', use SHOW HELP;").
SHOW HELP sends no RowDescription (only a NOTICE and then "SHOW"), so it is left out here.
"""

PGBOUNCER_VERSION = "1.18.0"

TYPE_NAMES = {25: "text", 23: "int4", 20: "int8", 1700: "numeric", 17: "bytea"}
TYPE_LENGTHS = {25: -1, 23: 4, 20: 8, 1700: -1, 17: -1}

COLUMNS = {
    'POOLS': ['database', 'user', 'cl_active', 'cl_waiting', 'cl_active_cancel_req', 'cl_waiting_cancel_req', 'sv_active', 'sv_active_cancel', 'sv_being_canceled', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login', 'maxwait', 'maxwait_us', 'pool_mode'],
    'CLIENTS': ['type', 'user', 'database', 'state', 'addr', 'port', 'local_addr', 'local_port', 'connect_time', 'request_time', 'wait', 'wait_us', 'close_needed', 'ptr', 'link', 'remote_pid', 'tls', 'application_name'],
    'SERVERS': ['type', 'user', 'database', 'state', 'addr', 'port', 'local_addr', 'local_port', 'connect_time', 'request_time', 'wait', 'wait_us', 'close_needed', 'ptr', 'link', 'remote_pid', 'tls', 'application_name'],
    'STATS': ['database', 'total_xact_count', 'total_query_count', 'total_received', 'total_sent', 'total_xact_time', 'total_query_time', 'total_wait_time', 'avg_xact_count', 'avg_query_count', 'avg_recv', 'avg_sent', 'avg_xact_time', 'avg_query_time', 'avg_wait_time'],
    'STATS_TOTALS': ['database', 'xact_count', 'query_count', 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time'],
    'STATS_AVERAGES': ['database', 'xact_count', 'query_count', 'bytes_received', 'bytes_sent', 'xact_time', 'query_time', 'wait_time'],
    'TOTALS': ['name', 'value'],
    'DATABASES': ['name', 'host', 'port', 'database', 'force_user', 'pool_size', 'min_pool_size', 'reserve_pool', 'pool_mode', 'max_connections', 'current_connections', 'paused', 'disabled'],
    'USERS': ['name', 'pool_mode'],
    'CONFIG': ['key', 'value', 'default', 'changeable'],
    'LISTS': ['list', 'items'],
    'VERSION': ['version'],
    'MEM': ['name', 'size', 'used', 'free', 'memtotal'],
    'FDS': ['fd', 'task', 'user', 'database', 'addr', 'port', 'cancel', 'link', 'client_encoding', 'std_strings', 'datestyle', 'timezone', 'password', 'scram_client_key', 'scram_server_key'],
    'SOCKETS': ['type', 'user', 'database', 'state', 'addr', 'port', 'local_addr', 'local_port', 'connect_time', 'request_time', 'wait', 'wait_us', 'close_needed', 'ptr', 'link', 'remote_pid', 'tls', 'application_name', 'recv_pos', 'pkt_pos', 'pkt_remain', 'send_pos', 'send_remain', 'pkt_avail', 'send_avail'],
    'ACTIVE_SOCKETS': ['type', 'user', 'database', 'state', 'addr', 'port', 'local_addr', 'local_port', 'connect_time', 'request_time', 'wait', 'wait_us', 'close_needed', 'ptr', 'link', 'remote_pid', 'tls', 'application_name', 'recv_pos', 'pkt_pos', 'pkt_remain', 'send_pos', 'send_remain', 'pkt_avail', 'send_avail'],
    'DNS_HOSTS': ['hostname', 'ttl', 'addrs'],
    'DNS_ZONES': ['zonename', 'serial', 'count'],
}

TYPES = {
    'POOLS': [25, 25, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 25],
    'CLIENTS': [25, 25, 25, 25, 25, 23, 25, 23, 25, 25, 23, 23, 23, 25, 25, 23, 25, 25],
    'SERVERS': [25, 25, 25, 25, 25, 23, 25, 23, 25, 25, 23, 23, 23, 25, 25, 23, 25, 25],
    'STATS': [25, 1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700],
    'STATS_TOTALS': [25, 1700, 1700, 1700, 1700, 1700, 1700, 1700],
    'STATS_AVERAGES': [25, 1700, 1700, 1700, 1700, 1700, 1700, 1700],
    'TOTALS': [25, 1700],
    'DATABASES': [25, 25, 23, 25, 25, 23, 23, 23, 25, 23, 23, 23, 23],
    'USERS': [25, 25],
    'CONFIG': [25, 25, 25, 25],
    'LISTS': [25, 23],
    'VERSION': [25],
    'MEM': [25, 23, 23, 23, 23],
    'FDS': [23, 25, 25, 25, 25, 23, 20, 23, 25, 25, 25, 25, 25, 17, 17],
    'SOCKETS': [25, 25, 25, 25, 25, 23, 25, 23, 25, 25, 23, 23, 23, 25, 25, 23, 25, 25, 23, 23, 23, 23, 23, 23, 23],
    'ACTIVE_SOCKETS': [25, 25, 25, 25, 25, 23, 25, 23, 25, 25, 23, 23, 23, 25, 25, 23, 25, 25, 23, 23, 23, 23, 23, 23, 23],
    'DNS_HOSTS': [25, 20, 25],
    'DNS_ZONES': [25, 20, 23],
}

# Command tags (CommandComplete) for non-SHOW admin commands, as observed.
COMMAND_TAGS = {
    'PAUSE': 'PAUSE', 'RESUME': 'RESUME', 'RELOAD': 'RELOAD', 'KILL': 'KILL',
    'RECONNECT': 'RECONNECT', 'DISABLE': 'DISABLE', 'ENABLE': 'ENABLE', 'WAIT_CLOSE': 'WAIT_CLOSE',
    'SUSPEND': 'SUSPEND',
    # SET key = value  ->  'SET key=value' (value unquoted, e.g. 'SET default_pool_size=30')
    'SET': 'SET {key}={value}',
}

assert all(len(COLUMNS[k]) == len(TYPES[k]) for k in COLUMNS)
