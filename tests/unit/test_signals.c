#include <criterion/criterion.h>
#include <signal.h>

#include "pea/signals.h"

Test(signals, accepts_number_name_and_sig_prefix)
{
    cr_assert_eq(signal_parse("9"), SIGKILL);
    cr_assert_eq(signal_parse("KILL"), SIGKILL);
    cr_assert_eq(signal_parse("SIGKILL"), SIGKILL);
    cr_assert_eq(signal_parse("sigterm"), SIGTERM);
    cr_assert_eq(signal_parse("TERM"), SIGTERM);
    cr_assert_eq(signal_parse("15"), SIGTERM);
    cr_assert_eq(signal_parse("SIGWINCH"), SIGWINCH);
}

Test(signals, realtime_signals)
{
    cr_assert_eq(signal_parse("RTMIN"), SIGRTMIN);
    cr_assert_eq(signal_parse("SIGRTMIN+3"), SIGRTMIN + 3);
    cr_assert_eq(signal_parse("RTMAX-1"), SIGRTMAX - 1);
    cr_assert_eq(signal_parse("RTMIN-1"), -1);
    cr_assert_eq(signal_parse("RTMIN+99"), -1);
}

Test(signals, rejects_unknown_and_out_of_range)
{
    cr_assert_eq(signal_parse(""), -1);
    cr_assert_eq(signal_parse("0"), -1);
    cr_assert_eq(signal_parse("-9"), -1);
    cr_assert_eq(signal_parse("65"), -1);
    cr_assert_eq(signal_parse("SIGFOO"), -1);
    cr_assert_eq(signal_parse("9x"), -1);
    cr_assert_eq(signal_parse(NULL), -1);
}

Test(signals, names)
{
    cr_assert_str_eq(signal_name(SIGKILL), "SIGKILL");
    cr_assert_str_eq(signal_name(SIGABRT), "SIGABRT");
    cr_assert_str_eq(signal_name(SIGRTMIN + 2), "SIGRTMIN+2");
    cr_assert_null(signal_name(0));
}
