#!/bin/sh
# make install into a temporary prefix, build a program with pkg-config against it, run it on a
# fixture, then make uninstall and check that nothing is left.
# Writes "passed failed skipped" to RESULT; exits 1 on any failure.
result=$1
passed=0; failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
bad() { echo "FAIL - $1"; failed=$((failed + 1)); }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

if make -s install PREFIX="$prefix" >"$tmp/install.log" 2>&1; then ok "make install"; else
    bad "make install"; cat "$tmp/install.log"; fi
for f in include/lora.h lib/liblora.so lib/liblora.so.0 lib/liblora.a lib/pkgconfig/lora.pc bin/lora; do
    if [ -e "$prefix/$f" ]; then ok "installed $f"; else bad "installed $f"; fi
done
soname=$(objdump -p "$prefix/lib/liblora.so" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
if [ "$soname" = "liblora.so.0" ]; then ok "SONAME liblora.so.0"; else bad "SONAME is '$soname'"; fi

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
if cc -std=c11 -o "$tmp/app" examples/generate_ids.c $(pkg-config --cflags --libs lora) \
       -Wl,-rpath,"$prefix/lib" 2>"$tmp/cc.log"; then ok "pkg-config build (shared)"; else
    bad "pkg-config build (shared)"; cat "$tmp/cc.log"; fi
# every example compiles against the installed header and library alone, warning-free
for src in examples/*.c; do
    name=$(basename "$src" .c)
    if cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$tmp/ex_$name" "$src" \
           $(pkg-config --cflags --libs lora) -pthread -lm -Wl,-rpath,"$prefix/lib" 2>"$tmp/cc_$name.log"
    then ok "example $name builds with pkg-config"; else
        bad "example $name builds with pkg-config"; cat "$tmp/cc_$name.log"; fi
done
if "$tmp/ex_hotswap" tests/fixtures/tiny-qwen2 tests/fixtures/tiny-qwen2/adapter >"$tmp/hs.log" 2>&1 &&
   grep -q "24 of 24 equal" "$tmp/hs.log"; then ok "installed hotswap example runs"; else
    bad "installed hotswap example runs"; cat "$tmp/hs.log"; fi
if [ -x "$tmp/app" ] && "$tmp/app" tests/fixtures/tiny-qwen2 >"$tmp/run.log" 2>&1 &&
   ldd "$tmp/app" | grep -q "$prefix/lib/liblora.so.0"; then ok "installed library runs"; else
    bad "installed library runs"; cat "$tmp/run.log"; fi
if cc -std=c11 -o "$tmp/app_static" examples/generate_ids.c \
       $(pkg-config --static --cflags lora) "$prefix/lib/liblora.a" \
       $(pkg-config --static --libs-only-other --libs-only-L lora) \
       $(pkg-config --static --libs lora | sed 's/-llora//') 2>"$tmp/cc2.log" &&
   "$tmp/app_static" tests/fixtures/tiny-qwen2 >/dev/null 2>&1; then ok "static link runs"; else
    bad "static link runs"; cat "$tmp/cc2.log"; fi

make -s uninstall PREFIX="$prefix" >/dev/null 2>&1
left=$(find "$prefix" -type f -o -type l | wc -l)
if [ "$left" -eq 0 ]; then ok "make uninstall removes every file"; else
    bad "make uninstall left $left files"; find "$prefix" -type f -o -type l; fi

echo "$passed $failed 0" > "$result"
[ "$failed" -eq 0 ]
