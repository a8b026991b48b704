# JSON for busybox sh: values out (json_str, json_num, json_bool) and one string in (json_get).
# Sourced by /init and facts.sh; tests run it with the host's busybox.

# json_str VALUE: VALUE as a JSON string, or null when it is empty.
# Quotes and backslashes are escaped, control characters become \n, \t or \u00XX, and so
# do bytes >= 0x7f: the document is plain ASCII whatever a firmware string holds (a UTF-8
# name arrives as its bytes, one \u00XX each: latin-1 decoding then UTF-8 gets it back).
json_str() {
    if [ -z "$1" ]; then printf 'null'; return; fi
    printf '%s' "$1" | awk '
        BEGIN { ORS = ""; for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i; printf "\"" }
        {
            if (NR > 1) printf "\\n"
            n = length($0)
            for (i = 1; i <= n; i++) {
                c = substr($0, i, 1); o = ord[c]
                if (c == "\"" || c == "\\") printf "\\%s", c
                else if (c == "\t") printf "\\t"
                else if (o < 32 || o > 126) printf "\\u%04x", o
                else printf "%s", c
            }
        }
        END { printf "\"" }'
}

# json_num VALUE: VALUE if it is a whole number, else null.
json_num() {
    case "$1" in
        '' | *[!0-9]*) printf 'null' ;;
        *) printf '%s' "$1" ;;
    esac
}

# json_bool VALUE: true for 1/true/yes, false otherwise.
json_bool() {
    case "$1" in
        1 | true | yes) printf 'true' ;;
        *) printf 'false' ;;
    esac
}

# json_get JSON KEY: the string value of "KEY" in a flat JSON object (no escapes in it).
json_get() {
    printf '%s' "$1" | tr -d '\r\n' |
        sed -n 's/.*"'"$2"'"[[:space:]]*:[[:space:]]*"\([^"\\]*\)".*/\1/p'
}
