# bash completion for pea(8). Commands and flags are read from pea's own --help output, so that this file cannot
# drift from the binary it completes; container ids come from `pea list -q` under the same --root.

_pea_help_flags() {
    # Every long and short flag in the option section ($1: "Global options" or "Options") of a --help text.
    local section=$1
    shift
    "$@" --help 2>/dev/null | sed -n "/^$section:/,\$p" | grep -oE '(^|[ ,[])--?[a-z][a-z-]*' | sed 's/^[][ ,]*//' |
        sort -u
}

_pea() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local pea=${COMP_WORDS[0]} command="" root=() i=1 nargs=0
    COMPREPLY=()
    # Find the command and a --root given before it, skipping the global options and their values.
    while [ "$i" -lt "$COMP_CWORD" ]; do
        case ${COMP_WORDS[i]} in
        --root | -root) root=(--root "${COMP_WORDS[i+1]}"); i=$((i + 2)); continue ;;
        --root=*) root=("${COMP_WORDS[i]}") ;;
        --log | --log-format | --criu | --rootless | -log | -log-format | -criu | -rootless) i=$((i + 1)) ;;
        -*) ;;
        *) command=${COMP_WORDS[i]}; break ;;
        esac
        i=$((i + 1))
    done
    if [ -z "$command" ]; then
        case $prev in
        --root | --criu) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --log) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
        --rootless) COMPREPLY=($(compgen -W "true false auto" -- "$cur")); return ;;
        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$(_pea_help_flags "Global options" "$pea")" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$("$pea" --help 2>/dev/null | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p')" -- "$cur"))
        fi
        return
    fi
    case $prev in
    -b | --bundle | --image-path | --work-path | --parent-path) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --pid-file | --console-socket | --pidfd-socket | -p | --process | -r | --resources | -f | --file)
        [ "$command" = list ] || [ "$command" = ps ] || { COMPREPLY=($(compgen -f -- "$cur")); return; } ;;
    esac
    case $prev in
    -f | --format) COMPREPLY=($(compgen -W "table json" -- "$cur")); return ;;
    --manage-cgroups-mode) COMPREPLY=($(compgen -W "soft full strict ignore" -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_pea_help_flags Options "$pea" "$command")" -- "$cur"))
        return
    fi
    # Count the arguments already given to the command (flags with a value are rare enough to ignore here).
    for ((i = i + 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == -* ]] || nargs=$((nargs + 1))
    done
    case $command in
    create | run | spec | features | list | pod | volume) ;;
    kill)
        if [ "$nargs" -eq 0 ]; then
            COMPREPLY=($(compgen -W "$("$pea" "${root[@]}" list -q 2>/dev/null)" -- "$cur"))
        elif [ "$nargs" -eq 1 ]; then
            # pea takes KILL, SIGKILL and 9 alike.
            local names=$(kill -l | grep -oE 'SIG[A-Z0-9+-]+')
            COMPREPLY=($(compgen -W "$names ${names//SIG/}" -- "$cur"))
        fi ;;
    *) [ "$nargs" -eq 0 ] && COMPREPLY=($(compgen -W "$("$pea" "${root[@]}" list -q 2>/dev/null)" -- "$cur")) ;;
    esac
}

complete -F _pea pea
