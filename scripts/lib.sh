# Helpers shared by the scripts in this folder. Source it, do not run it:
#
#     . scripts/lib.sh     # after `cd` to the repository root

# Prints a command (`+ cmd args`) and runs it, so a log shows what ran.
run() {
    printf '+ %s\n' "$*"
    "$@"
}
