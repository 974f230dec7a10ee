#include <criterion/criterion.h>
#include <stdlib.h>

#include "pea/idmap.h"

static size_t parse(const char *text, const char *name, uid_t uid, struct pea_id_range **out)
{
    return idmap_parse_subid(text, name, uid, out);
}

Test(idmap, ranges_of_the_user_by_name_and_by_uid_in_file_order)
{
    struct pea_id_range *r;
    size_t n = parse("alice:100000:65536\n"
                     "bob:165536:65536\n"
                     "1000:300000:10\n"
                     "alice:400000:5\n",
                     "alice", 1000, &r);
    cr_assert_eq(n, 3);
    cr_assert_eq(r[0].start, 100000);
    cr_assert_eq(r[0].count, 65536);
    cr_assert_eq(r[1].start, 300000);
    cr_assert_eq(r[1].count, 10);
    cr_assert_eq(r[2].start, 400000);
    cr_assert_eq(r[2].count, 5);
    free(r);
}

Test(idmap, comments_blank_lines_and_no_trailing_newline)
{
    struct pea_id_range *r;
    size_t n = parse("# alice:1:2\n\n\nalice:7:8", "alice", 1000, &r);
    cr_assert_eq(n, 1);
    cr_assert_eq(r[0].start, 7);
    cr_assert_eq(r[0].count, 8);
    free(r);
}

Test(idmap, no_name_matches_by_uid_only)
{
    struct pea_id_range *r;
    cr_assert_eq(parse("alice:7:8\n1000:9:10\n", NULL, 1000, &r), 1);
    cr_assert_eq(r[0].start, 9);
    free(r);
}

Test(idmap, names_must_match_whole)
{
    struct pea_id_range *r;
    cr_assert_eq(parse("alic:1:1\nalice2:2:2\n10000:3:3\n100:4:4\n", "alice", 1000, &r), 0);
    cr_assert_null(r);
}

Test(idmap, malformed_lines_grant_nothing)
{
    struct pea_id_range *r;
    size_t n = parse("alice:1\n"
                     "alice:1:2:3\n"
                     "alice::5\n"
                     "alice:5:\n"
                     "alice:-1:5\n"
                     "alice:+1:5\n"
                     "alice: 1:5\n"
                     "alice:1:5 \n"
                     "alice:0x10:5\n"
                     "alice:10:0\n"
                     "alice:4294967296:1\n"
                     "alice:4294967295:1\n"
                     "alice:4294967290:6\n"
                     " alice:1:5\n"
                     "alice:4294967290:5\n",
                     "alice", 1000, &r);
    cr_assert_eq(n, 1, "only the last line is well formed (its last id is 4294967294)");
    cr_assert_eq(r[0].start, 4294967290u);
    cr_assert_eq(r[0].count, 5);
    free(r);
}

Test(idmap, empty_text)
{
    struct pea_id_range *r;
    cr_assert_eq(parse("", "alice", 1000, &r), 0);
    cr_assert_null(r);
}

Test(idmap, missing_file_grants_nothing)
{
    struct pea_id_range *r;
    cr_assert_eq(idmap_subid_ranges("/nonexistent/subuid", 1000, &r), 0);
    cr_assert_null(r);
}
