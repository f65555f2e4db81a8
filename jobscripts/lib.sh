# shellcheck shell=bash
# Shared helpers of the hpcmsm job scripts (sourced, not run).  See docs/cluster.md.
#
# HPCMSM_HOME  the hpcmsm checkout (default: the directory sbatch was called from, which SLURM
#              exports as SLURM_SUBMIT_DIR; sbatch copies job scripts away, so they cannot find
#              their own directory)
# The launcher "$HPCMSM_HOME/run -n N COMMAND" uses srun inside an allocation (SLURM_JOB_ID set
# and srun on PATH), mpirun elsewhere; HPCMSM_PYTHON selects a site interpreter (modules/Spack).
set -euo pipefail

: "${HPCMSM_HOME:=${SLURM_SUBMIT_DIR:-$PWD}}"
if [ ! -x "$HPCMSM_HOME/run" ]; then
    echo "hpcmsm job: no launcher at $HPCMSM_HOME/run: submit from the hpcmsm directory or set HPCMSM_HOME" >&2
    exit 2
fi
HPCMSM_RUN="$HPCMSM_HOME/run"
EXIT_STOPPED=75    # hpcmsm.signals.EXIT_STOPPED: stopped cleanly with a checkpoint, resubmit

hpcmsm_log() { echo "[hpcmsm-job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+_$SLURM_ARRAY_TASK_ID} $(date -u +%H:%M:%S)] $*" >&2; }

# Absolute path of a file named relative to the submit directory.
hpcmsm_abspath() { case "$1" in /*) echo "$1" ;; *) echo "${SLURM_SUBMIT_DIR:-$PWD}/$1" ;; esac; }

# hpcmsm_step CMD...: run CMD (a job step) in the background and wait for it, forwarding SLURM's
# warning signal.  With "#SBATCH --signal=B:USR1@120" only this batch shell gets SIGUSR1; bash
# runs a trap only between commands, so the step must run in the background for the trap to
# fire while it runs.  srun (and mpirun) forward USR1/TERM to every task, where
# hpcmsm.signals turns it into "checkpoint at the next step and exit 75".
hpcmsm_step() {
    local pid rc
    "$@" &
    pid=$!
    # shellcheck disable=SC2064
    trap "hpcmsm_log 'SIGUSR1: asking the run to checkpoint and stop'; kill -USR1 $pid 2>/dev/null || true" USR1
    # shellcheck disable=SC2064
    trap "hpcmsm_log 'SIGTERM: passing it on'; kill -TERM $pid 2>/dev/null || true" TERM
    while :; do
        rc=0
        wait "$pid" || rc=$?
        # a trapped signal interrupts wait with status > 128 while the step still runs
        if [ "$rc" -gt 128 ] && kill -0 "$pid" 2>/dev/null; then continue; fi
        break
    done
    trap - USR1 TERM
    return "$rc"
}

# Split the ARGS variable into words (on purpose: ARGS="--json out.json -ch_ksp_type cg").
hpcmsm_args() { read -r -a HPCMSM_EXTRA <<< "${ARGS:-}"; }

# hpcmsm_single JOBSCRIPT: one run of $COMMAND [$INPUT] $ARGS [--restart] on $NTASKS ranks
# (default: the allocation's SLURM_NTASKS).  Exit 75 from the run (stopped at the wall-time
# warning, checkpoint written) resubmits JOBSCRIPT with RESTART=1 while RESUBMIT > 0.
hpcmsm_single() {
    local script=$1 ntasks rc=0 words
    : "${COMMAND:?set COMMAND (fe2, phasefield, homogenize, qc, solve, ...)}"
    ntasks=${NTASKS:-${SLURM_NTASKS:-1}}
    read -r -a words <<< "$COMMAND"
    if [ -n "${INPUT:-}" ]; then words+=("$(hpcmsm_abspath "$INPUT")"); fi
    hpcmsm_args
    words+=("${HPCMSM_EXTRA[@]}")
    if [ "${RESTART:-0}" = 1 ]; then words+=(--restart); fi
    if [ -n "${WORKDIR:-}" ]; then mkdir -p "$WORKDIR" && cd "$WORKDIR"; fi
    hpcmsm_log "hpcmsm ${words[*]} on $ntasks rank(s), ${SLURM_JOB_NUM_NODES:-1} node(s), in $PWD"
    hpcmsm_step "$HPCMSM_RUN" -n "$ntasks" "${words[@]}" || rc=$?
    if [ "$rc" = "$EXIT_STOPPED" ]; then
        if [ "${RESUBMIT:-0}" -gt 0 ]; then
            hpcmsm_log "stopped with a checkpoint; resubmitting $script with --restart (RESUBMIT=$((RESUBMIT - 1)) left)"
            # SBATCH_* variables (SBATCH_TIMELIMIT, SBATCH_PARTITION, SBATCH_ACCOUNT) travel in
            # the exported environment, so the continuation gets the same limits
            sbatch --export="ALL,RESTART=1,RESUBMIT=$((RESUBMIT - 1))" \
                   --dependency="afterany:${SLURM_JOB_ID:-0}" \
                   --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks="$ntasks" "$script"
            return 0
        fi
        hpcmsm_log "stopped with a checkpoint; continue with RESTART=1 (or set RESUBMIT=n to chain jobs)"
    elif [ "$rc" != 0 ]; then
        hpcmsm_log "run failed with exit status $rc"
    fi
    return "$rc"
}
