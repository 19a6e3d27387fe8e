# fish completion for imapsnap(1).
#
# Installed by `make install` into share/fish/vendor_completions.d.  To
# try it from a checkout: source contrib/fish/imapsnap.fish
#
# Keep it in step with the commands' options: every long option that
# `imapsnap help COMMAND` shows must be offered here for that command
# (tests/integration/test_completion.py checks, as it does for bash and
# zsh).

set -l commands backup list run verify restore migrate auth help

# The [NAME]s of the config file that `imapsnap run` would read.
function __imapsnap_accounts
    set -l config
    set -l tokens (commandline -opc)
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case -c --config
                set config $tokens[(math $i + 1)]
            case '--config=*'
                set config (string replace -- --config= '' $tokens[$i])
        end
    end
    if test -z "$config"
        if string match -q '/*' -- "$XDG_CONFIG_HOME"
            set config $XDG_CONFIG_HOME/imapsnap/config
        else
            set config $HOME/.config/imapsnap/config
        end
    end
    set config (string replace -r '^~' $HOME -- $config)
    test -r $config; or return
    sed -n 's/^[[:space:]]*\[\([A-Za-z0-9._@-]*\)\][[:space:]]*$/\1/p' -- $config 2>/dev/null
end

function __imapsnap_using
    __fish_seen_subcommand_from $argv
end

complete -c imapsnap -f
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -l help -d 'Show the commands'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -l version -d 'Print the version'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -a backup -d 'Back up every folder of an IMAP account into DEST'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -a list -d 'List the folders with their counts and sizes'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -a run -d 'Back up the accounts of the config file'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -a verify -d 'Check a backup against its manifests'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -a restore -d 'Put a backup back into an IMAP account'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -a migrate -d 'Copy an account to another server'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -a auth -d 'Authorise imapsnap at an OAuth2 provider, once'
complete -c imapsnap -n "not __fish_seen_subcommand_from $commands" -a help -d 'Show help'
complete -c imapsnap -n '__fish_seen_subcommand_from help' -a 'backup list run verify restore migrate auth'

# How to reach and log in to the server: backup, list, restore.
set -l conn 'backup list restore'
complete -c imapsnap -n "__imapsnap_using $conn auth" -l user -x -d 'The login name'
complete -c imapsnap -n "__imapsnap_using $conn" -l password-file -r -F -d 'Read the password from FILE'
complete -c imapsnap -n "__imapsnap_using $conn" -l password-command -x -a '(__fish_complete_command)' -d 'Use the first line CMD prints'
complete -c imapsnap -n "__imapsnap_using $conn" -l oauth2-token-command -x -a '(__fish_complete_command)' -d 'Log in with the OAuth2 token CMD prints'
complete -c imapsnap -n "__imapsnap_using $conn migrate" -l tls -x -a 'starttls none' -d 'Allow plaintext on imap:// with none'
complete -c imapsnap -n "__imapsnap_using $conn migrate" -l cacert -r -F -d 'Trust the CA certificates in FILE'
complete -c imapsnap -n "__imapsnap_using $conn migrate" -l insecure -d 'Do not verify the certificate'
complete -c imapsnap -n "__imapsnap_using $conn migrate auth" -l timeout -x -d 'Give up on a silent server (seconds)'

# OAuth2, built in: backup, list, restore and auth.
set -l oauth 'backup list restore auth'
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2 -x -a 'google microsoft custom' -d 'The OAuth2 provider'
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2-client-id -x -d 'The client id imapsnap is registered under'
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2-client-secret-file -r -F -d 'The client secret, first line of FILE'
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2-scope -x -d "Override the provider's scope"
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2-device-url -x -d 'Override the device authorization endpoint'
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2-authorize-url -x -d 'Override the authorization endpoint'
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2-token-url -x -d 'Override the token endpoint'
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2-token-file -r -F -d 'Where the refresh token is kept'
complete -c imapsnap -n "__imapsnap_using $oauth migrate" -l oauth2-cacert -r -F -d "CA bundle for the provider's endpoints"
complete -c imapsnap -n "__imapsnap_using $oauth" -l oauth2-flow -x -a 'device loopback' -d 'How to authorise'

# What to back up or restore.
complete -c imapsnap -n '__imapsnap_using backup' -l format -x -a 'maildir mbox mbox.gz tar tar.gz tar.zst tar.xz zip' -d 'The store to write'
complete -c imapsnap -n '__imapsnap_using backup restore migrate' -l include -x -d 'Only folders matching GLOB'
complete -c imapsnap -n '__imapsnap_using backup restore migrate' -l exclude -x -d 'Not folders matching GLOB'
complete -c imapsnap -n '__imapsnap_using backup' -l since -x -d 'Only messages received on or after YYYY-MM-DD'
complete -c imapsnap -n '__imapsnap_using backup' -l before -x -d 'Only messages received before YYYY-MM-DD'
complete -c imapsnap -n '__imapsnap_using backup' -l retries -x -d 'Reconnect up to N times per folder'
complete -c imapsnap -n '__imapsnap_using backup' -l connections -x -d 'Sessions at once, 1 to 64'
complete -c imapsnap -n '__imapsnap_using backup' -l commit-interval -x -d 'Commit what arrived at least this often (seconds)'
complete -c imapsnap -n '__imapsnap_using backup' -l tsa -x -d 'Have the RFC 3161 TSA at URL timestamp the manifest'
complete -c imapsnap -n '__imapsnap_using backup verify' -l tsa-cacert -r -F -d "The TSA's CA"
complete -c imapsnap -n '__imapsnap_using backup run restore migrate' -s n -l dry-run -d 'Connect and plan; write nothing'
complete -c imapsnap -n '__imapsnap_using backup run' -l metrics -r -F -d 'Write the outcome to FILE for Prometheus'
complete -c imapsnap -n '__imapsnap_using list' -l sizes -d 'Add up message sizes the server does not report'

# run
complete -c imapsnap -n '__imapsnap_using run auth' -s c -l config -r -F -d 'The config file'
complete -c imapsnap -n '__imapsnap_using run' -l shard -x -d 'Only the accounts in shard K of N (K/N or auto/N)'
complete -c imapsnap -n '__imapsnap_using run auth' -a '(__imapsnap_accounts)' -d Account

# verify
complete -c imapsnap -n '__imapsnap_using verify' -l expect -x -d 'Also require the run with this manifest SHA-256'

# restore and migrate
complete -c imapsnap -n '__imapsnap_using restore migrate' -l into -x -d 'Restore below FOLDER'
complete -c imapsnap -n '__imapsnap_using restore migrate' -l state-dir -x -a '(__fish_complete_directories)' -d 'Where restores remember what they appended'
complete -c imapsnap -n '__imapsnap_using restore migrate' -l retries -x -d 'Reconnect up to N times in the run'
complete -c imapsnap -n '__imapsnap_using restore migrate' -l no-special-use -d 'Keep every folder\'s own name: no special-use mapping'
for side in src dst
    complete -c imapsnap -n '__imapsnap_using migrate' -l $side-user -x -d "The $side login name"
    complete -c imapsnap -n '__imapsnap_using migrate' -l $side-password-file -r -F -d "The $side password file"
    complete -c imapsnap -n '__imapsnap_using migrate' -l $side-password-command -x -a '(__fish_complete_command)' -d "The $side password command"
    complete -c imapsnap -n '__imapsnap_using migrate' -l $side-oauth2-token-command -x -a '(__fish_complete_command)' -d "The $side OAuth2 token command"
    complete -c imapsnap -n '__imapsnap_using migrate' -l $side-oauth2 -x -a 'google microsoft custom' -d "OAuth2 for the $side, with the stored token"
    complete -c imapsnap -n '__imapsnap_using migrate' -l $side-oauth2-token-file -r -F -d "The $side token file"
end

# What every command prints.
complete -c imapsnap -n "__imapsnap_using backup list run verify restore migrate" -l json -d 'Print JSON on standard output'
complete -c imapsnap -n "__imapsnap_using backup list run verify restore migrate auth" -s q -l quiet -d 'Print only errors'
complete -c imapsnap -n "__imapsnap_using backup list run restore migrate" -s v -l verbose -d 'Also print the protocol trace'
complete -c imapsnap -n "__imapsnap_using backup list run verify restore migrate auth" -l help -d 'Show the options'

# Operands: URLs and paths.
complete -c imapsnap -n '__imapsnap_using backup list restore migrate auth' -a 'imaps:// imap://' -d URL
complete -c imapsnap -n '__imapsnap_using backup verify restore' -F
