# Completes command lines in a real interactive zsh (run under zpty) with the generated agentfense
# completion loaded, and prints the candidates offered for each: a line "<<line>>", then the
# candidates one per line, sorted.
#
# usage: zsh -f zsh_complete.zsh fpath|source COMPLETION_FILE LINE...
#   fpath:  COMPLETION_FILE's directory goes in $fpath before compinit (the documented install)
#   source: COMPLETION_FILE is sourced after compinit
#
# Candidates are collected by wrapping compadd: every call that adds matches also prints them,
# with a marker, to the terminal; a post-completion hook prints an end marker. The markers are
# written split in the commands we type, so that zsh's echo of those commands never holds them.
zmodload zsh/zpty || exit 3
mode=$1 file=$2
shift 2
zpty af zsh -f -i
zpty -w af "PS1=''; RPS1=''; unsetopt beep; setopt no_prompt_cr"
if [[ $mode == fpath ]]; then
  zpty -w af "fpath=(${(q)file:h} \$fpath); autoload -Uz compinit; compinit -u -D"
else
  zpty -w af "autoload -Uz compinit; compinit -u -D; source ${(q)file}"
fi
zpty -w af "bindkey -e; bindkey '^I' complete-word; bindkey '^U' kill-whole-line"
zpty -w af 'compadd() {
  local -a __af
  if [[ " $* " == *" -"[OAD]* ]]; then builtin compadd "$@"; return; fi
  builtin compadd -A __af "$@"
  (($#__af)) && print -rl -- "${__af[@]/#/<<af""-c>>}"
  builtin compadd "$@"
}'
zpty -w af '__af_done() { print -r -- "<<af""-done>>" }'
for line in "$@"; do
  # _main_complete empties comppostfuncs after each completion: arm it again every time.
  zpty -w af 'comppostfuncs=(__af_done)'
  zpty -w -n af "$line"$'\t'
  out="" chunk=""
  while [[ $out != *'<<af-done>>'* ]]; do
    zpty -r af chunk || exit 4
    out+=$chunk
  done
  print -r -- "<<line>>"
  print -r -- "${out%%'<<af-done>>'*}" | tr -d '\r' | sed -n 's/.*<<af-c>>//p' | sort -u
  zpty -w -n af $'\C-u'
done
zpty -d af 2>/dev/null
