"""The simulator's GitHub world: repositories, pull requests and their reviews, commits on the
default branch, and issues (pull requests listed among them, as GitHub does)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tenantpulse.simulator.profiles import ENGINEERING_WEEK
from tenantpulse.simulator.world import (
    HOUR,
    NEVER,
    P_GITHUB_COMMITS,
    P_GITHUB_ISSUES,
    P_GITHUB_PRS,
    P_GITHUB_REPO_DAY,
    P_GITHUB_TEAM,
    SECONDS_PER_DAY,
    Rows,
    World,
    choice_index,
    dumps,
    emit,
    event_versions,
    hash64,
    hex_strings,
    iso,
    people,
    working_hours,
)

REPO_NAMES = ("api", "web", "mobile", "infra", "billing", "data-pipeline")
REPO_LANGUAGES = ("Python", "TypeScript", "Kotlin", "HCL", "Go", "Python")
MERGED, CLOSED, OPEN = 0, 1, 2  # PR outcomes, indexes of PR_OUTCOME_WEIGHTS
PR_OUTCOME_WEIGHTS = (0.82, 0.12, 0.06)
DRAFT_SHARE = 0.12
MERGE_SIGMA = 0.6  # log-normal spread of time to merge around the profile's median
CLOSED_MEDIAN_HOURS, CLOSED_SIGMA = 60.0, 1.0
FIRST_REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED")
FIRST_REVIEW_WEIGHTS = (0.75, 0.15, 0.10)
SECOND_APPROVAL_SHARE = 0.90  # merged PRs whose first review did not approve
COMMITS_PER_DAY = 9.0  # direct commits on the default branch, besides squash merges
NO_ACCOUNT_SHARE = 0.15  # commits whose author email matches no GitHub account
ISSUES_PER_DAY = 1.5
ISSUE_CLOSE_SHARE, ISSUE_CLOSE_MEDIAN_DAYS = 0.75, 4.0
STARS_PER_DAY = 0.4
LABELS = (
    ("bug", "d73a4a", 101),
    ("enhancement", "a2eeef", 102),
    ("chore", "ededed", 103),
    ("dependencies", "0366d6", 104),
)
VERBS = ("Fix", "Add", "Refactor", "Update", "Remove", "Speed up", "Document", "Test")
NOUNS = (
    "billing webhook",
    "login flow",
    "search index",
    "CI cache",
    "rate limiter",
    "export job",
    "settings page",
    "retry logic",
    "onboarding email",
    "API pagination",
    "dashboard chart",
    "database migration",
)
ISSUE_TOPICS = (
    "Crash when saving settings",
    "Slow dashboard load",
    "Support SSO",
    "Typo in docs",
    "Export to CSV fails",
    "Dark mode",
    "Webhook retries missing",
    "Timezone bug in reports",
)

_PR_ID_BASE = 1_400_000_000
_REVIEW_ID_BASE = 1_900_000_000
_ISSUE_ID_BASE = 2_100_000_000
_USER_ID_BASE = 10_000_000


def org_name(tenant_id: str) -> str:
    """The GitHub organisation of the tenant's repositories (and its team's email domain)."""
    return tenant_id.replace("_", "-")


class _Team:
    def __init__(self, world: World) -> None:
        rng = world.rng(P_GITHUB_TEAM)
        self.org = org_name(world.tenant_id)
        n = int(5 + rng.integers(0, 5))
        first, last, _ = people(world, 2, np.arange(n))
        logins = [f"{f}-{la}" for f, la in zip(first, last, strict=True)]
        # Two people with the same name get distinct logins, as GitHub requires.
        logins = [lo if lo not in logins[:i] else f"{lo}-{i}" for i, lo in enumerate(logins)]
        self.login = np.array(logins, dtype=object)
        self.user_id = _USER_ID_BASE + (
            hash64(world.seed, world.tenant_key, np.arange(n)) % np.uint64(9 * 10**7)
        ).astype(np.int64)
        self.name = np.array(
            [f"{f.title()} {la.title()}" for f, la in zip(first, last, strict=True)], dtype=object
        )
        self.email = np.array(
            [f"{f}.{la}@{self.org}.dev" for f, la in zip(first, last, strict=True)], dtype=object
        )
        self.user_json = np.array(
            [
                dumps({"id": int(i), "login": lo, "type": "User"})
                for i, lo in zip(self.user_id, self.login, strict=True)
            ],
            dtype=object,
        )
        n_repos = int(2 + rng.integers(0, 3))
        picks = np.sort(rng.choice(len(REPO_NAMES), n_repos, replace=False))
        self.repo_name = np.array([REPO_NAMES[p] for p in picks], dtype=object)
        self.repo_full = np.array([f"{self.org}/{r}" for r in self.repo_name], dtype=object)
        self.repo_language = np.array([REPO_LANGUAGES[p] for p in picks], dtype=object)
        self.repo_weight = rng.random(n_repos) + 0.5
        self.repo_id = 300_000_000 + (
            hash64(world.seed, world.tenant_key, 7, picks) % np.uint64(10**8)
        ).astype(np.int64)
        self.repo_created = world.start_t - rng.integers(
            200 * SECONDS_PER_DAY, 1500 * SECONDS_PER_DAY, n_repos
        )
        self.repo_number_base = rng.integers(20, 900, n_repos)
        self.repo_stars = rng.integers(0, 300, n_repos)
        org_id = 40_000_000 + world.tenant_key % 10**7
        self.owner_json = dumps({"id": org_id, "login": self.org, "type": "Organization"})


def _pull_requests(world: World, team: _Team) -> dict:
    profile = world.profile
    n_team = len(team.login)

    def build(day: int, rng: np.random.Generator) -> dict:
        n = world.count(profile.pr_rate(day) * ENGINEERING_WEEK[world.weekday(day)], rng)
        created = working_hours(rng, world.day_start(day), n)
        u = rng.random((n, 12))
        z = rng.standard_normal(n)
        outcome = choice_index(u[:, 4], PR_OUTCOME_WEIGHTS)
        draft = u[:, 2] < DRAFT_SHARE
        ready = np.where(draft, created + ((2 + 22 * u[:, 3]) * HOUR).astype(np.int64), created)
        merge_hours = profile.merge_median_hours(day) * np.exp(MERGE_SIGMA * z)
        close_hours = CLOSED_MEDIAN_HOURS * np.exp(CLOSED_SIGMA * z)
        duration = np.where(outcome == MERGED, merge_hours, close_hours) * HOUR
        duration = np.maximum(duration, ready - created + HOUR).astype(np.int64)
        closed = np.where(outcome == OPEN, NEVER, created + duration)
        author = (u[:, 1] * n_team).astype(np.int64)
        reviewer = (author + 1 + (u[:, 5] * (n_team - 1)).astype(np.int64)) % n_team
        # First review: a share of the way to the close (open PRs: within two days).
        first_t = np.where(
            outcome == OPEN,
            created + ((1 + 47 * u[:, 6]) * HOUR).astype(np.int64),
            created + (duration * (0.2 + 0.5 * u[:, 6])).astype(np.int64),
        )
        first_t = np.maximum(first_t, ready + 600)
        first_state = np.where(
            outcome == MERGED, choice_index(u[:, 7], FIRST_REVIEW_WEIGHTS), 1 + (u[:, 7] < 0.5)
        )
        has_first = (outcome == MERGED) | (u[:, 8] < 0.6)
        has_second = (outcome == MERGED) & (first_state != 0) & (u[:, 9] < SECOND_APPROVAL_SHARE)
        second_t = created + (duration * (0.75 + 0.2 * u[:, 8])).astype(np.int64)
        return {
            "created": created,
            "repo": choice_index(u[:, 0], team.repo_weight),
            "author": author,
            "draft": draft,
            "ready": ready,
            "outcome": outcome,
            "closed": closed,
            "reviewer": reviewer,
            "first_t": first_t,
            "first_state": first_state,
            "has_first": has_first,
            "has_second": has_second,
            "second_t": np.maximum(second_t, first_t + 600),
            "title": _title_codes(u[:, 10], u[:, 11]),
        }

    return world.per_day(P_GITHUB_PRS, build)


def _issues(world: World, team: _Team) -> dict:
    n_team = len(team.login)

    def build(day: int, rng: np.random.Generator) -> dict:
        n = world.count(ISSUES_PER_DAY * ENGINEERING_WEEK[world.weekday(day)], rng)
        created = working_hours(rng, world.day_start(day), n)
        u = rng.random((n, 8))
        closes = u[:, 2] < ISSUE_CLOSE_SHARE
        delay = -np.log1p(-u[:, 3]) * ISSUE_CLOSE_MEDIAN_DAYS / np.log(2) * SECONDS_PER_DAY
        closed = np.where(closes, created + delay.astype(np.int64) + 600, NEVER)
        comments = np.floor(-np.log1p(-u[:, 4]) * 2.5).astype(np.int64)
        span = np.where(closes, delay, 3 * SECONDS_PER_DAY)
        return {
            "created": created,
            "repo": choice_index(u[:, 0], team.repo_weight),
            "author": np.where(
                u[:, 1] < 0.7,
                (u[:, 1] / 0.7 * n_team).astype(np.int64),
                -1 - (u[:, 1] * 1000).astype(np.int64),
            ),
            "closed": closed,
            "not_planned": u[:, 5] < 0.15,
            "comments": comments,
            "comment_t": created + ((0.1 + 0.5 * u[:, 6]) * span).astype(np.int64) + 60,
            "topic": (u[:, 7] * len(ISSUE_TOPICS)).astype(np.int64),
        }

    return world.per_day(P_GITHUB_ISSUES, build)


def _commits(world: World, team: _Team) -> dict:
    n_team = len(team.login)

    def build(day: int, rng: np.random.Generator) -> dict:
        n = world.count(COMMITS_PER_DAY * ENGINEERING_WEEK[world.weekday(day)], rng)
        created = working_hours(rng, world.day_start(day), n)
        u = rng.random((n, 5))
        return {
            "created": created,
            "repo": choice_index(u[:, 0], team.repo_weight),
            "author": (u[:, 1] * n_team).astype(np.int64),
            "no_account": u[:, 2] < NO_ACCOUNT_SHARE,
            "title": _title_codes(u[:, 3], u[:, 4]),
        }

    return world.per_day(P_GITHUB_COMMITS, build)


def _title_codes(verb: np.ndarray, noun: np.ndarray) -> np.ndarray:
    return (verb * len(VERBS)).astype(np.int64) * 100 + (noun * len(NOUNS)).astype(np.int64)


def _titles(codes: np.ndarray) -> np.ndarray:
    return np.array([f"{VERBS[c // 100]} {NOUNS[c % 100]}" for c in codes], dtype=object)


def sync(world: World, after_t: float | None) -> dict[str, Rows]:
    team = _Team(world)
    prs, issues, direct = _pull_requests(world, team), _issues(world, team), _commits(world, team)
    n_pr, n_is = len(prs["created"]), len(issues["created"])

    # PRs and issues share one number sequence per repository and one issue-id sequence.
    repo = np.concatenate([prs["repo"], issues["repo"]])
    created = np.concatenate([prs["created"], issues["created"]])
    order = np.lexsort((np.arange(n_pr + n_is), created))
    issue_id = np.empty(n_pr + n_is, np.int64)
    issue_id[order] = _ISSUE_ID_BASE + np.arange(n_pr + n_is)
    number = np.empty(n_pr + n_is, np.int64)
    for r in range(len(team.repo_name)):
        in_repo = order[repo[order] == r]
        number[in_repo] = team.repo_number_base[r] + 1 + np.arange(len(in_repo))
    pr_number = number[:n_pr]
    pr_id = _PR_ID_BASE + np.arange(n_pr, dtype=np.int64)
    pr_title = _titles(prs["title"])
    merge_sha = hex_strings(world, 11, np.arange(n_pr), 40)
    pr_url = np.array(
        [
            f"https://api.github.com/repos/{team.repo_full[r]}/pulls/{n}"
            for r, n in zip(prs["repo"], pr_number, strict=True)
        ],
        dtype=object,
    )

    return {
        "github__repositories": _repository_rows(world, team, prs, issues, direct, after_t),
        "github__pull_requests": _pr_rows(
            world, team, prs, pr_id, pr_number, pr_title, merge_sha, after_t
        ),
        "github__commits": _commit_rows(
            world, team, prs, direct, pr_number, pr_title, merge_sha, after_t
        ),
        "github__issues": _issue_rows(
            world, team, prs, issues, issue_id, number, pr_title, pr_url, after_t
        ),
        "github__reviews": _review_rows(world, team, prs, pr_url, after_t),
    }


def _pr_rows(world, team, prs, pr_id, pr_number, pr_title, merge_sha, after_t) -> Rows:
    open_state = {"draft": False, "closed": False}
    versions = event_versions(
        [
            (
                np.ones(len(pr_id), bool),
                prs["created"],
                {**open_state, "draft": prs["draft"], "requested": True},
            ),
            (prs["draft"], prs["ready"], {**open_state, "requested": True}),
            (prs["has_first"], prs["first_t"], {**open_state, "requested": False}),
            (prs["has_second"], prs["second_t"], {**open_state, "requested": False}),
            (
                prs["outcome"] != OPEN,
                prs["closed"],
                {"draft": False, "closed": True, "requested": False},
            ),
        ]
    )
    labels = _label_json(world, pr_id)
    requested = np.array([f"[{team.user_json[r]}]" for r in prs["reviewer"]], dtype=object)

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        closed = latest["closed"].to_numpy()
        is_merged = closed & (prs["outcome"][k] == MERGED)
        return {
            "id": pr_id[k],
            "number": pr_number[k],
            "repository": team.repo_full[prs["repo"][k]],
            "state": np.where(closed, "closed", "open").astype(object),
            "title": pr_title[k],
            "draft": latest["draft"].to_numpy(),
            "user": team.user_json[prs["author"][k]],
            "created_at": prs["created"][k],
            "updated_at": latest["_t"].to_numpy(),
            "closed_at": np.where(closed, prs["closed"][k], np.nan),
            "merged_at": np.where(is_merged, prs["closed"][k], np.nan),
            "merge_commit_sha": np.where(is_merged, merge_sha[k], None),
            "labels": labels[k],
            "requested_reviewers": np.where(latest["requested"].to_numpy(), requested[k], "[]"),
        }

    return emit(versions, render, world, after_t)


def _label_json(world: World, keys: np.ndarray) -> np.ndarray:
    u = world.uniform(P_GITHUB_PRS, keys, salt=9)
    options = ["[]"] + [dumps([{"color": c, "id": i, "name": n}]) for n, c, i in LABELS]
    return np.array(options, dtype=object)[choice_index(u, (0.4, 0.25, 0.2, 0.1, 0.05))]


def _review_rows(world, team, prs, pr_url, after_t) -> Rows:
    first = np.flatnonzero(prs["has_first"])
    second = np.flatnonzero(prs["has_second"])
    pr = np.concatenate([first, second])
    state = np.concatenate([prs["first_state"][first], np.zeros(len(second), np.int64)])
    t = np.concatenate([prs["first_t"][first], prs["second_t"][second]])
    order = np.lexsort((np.arange(len(pr)), pr))  # reviews numbered per PR in creation order
    pr, state, t = pr[order], state[order], t[order]
    versions = pd.DataFrame({"_key": np.arange(len(pr)), "_t": t})
    states = np.array(FIRST_REVIEW_STATES, dtype=object)

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        submitted = t[k]
        return {
            "id": _REVIEW_ID_BASE + k,
            "repository": team.repo_full[prs["repo"][pr[k]]],
            "state": states[state[k]],
            "user": team.user_json[prs["reviewer"][pr[k]]],
            "pull_request_url": pr_url[pr[k]],
            "submitted_at": submitted,
            "created_at": submitted,
            "updated_at": submitted,
        }

    return emit(versions, render, world, after_t)


def _commit_rows(world, team, prs, direct, pr_number, pr_title, merge_sha, after_t) -> Rows:
    merged = np.flatnonzero(prs["outcome"] == MERGED)
    n_direct = len(direct["created"])
    sha = np.concatenate([hex_strings(world, 10, np.arange(n_direct), 40), merge_sha[merged]])
    t = np.concatenate([direct["created"], prs["closed"][merged]])
    repo = np.concatenate([direct["repo"], prs["repo"][merged]])
    author = np.concatenate([direct["author"], prs["author"][merged]])
    no_account = np.concatenate([direct["no_account"], np.zeros(len(merged), bool)])
    message = np.concatenate(
        [
            _titles(direct["title"]),
            np.array(
                [
                    f"{ti} (#{nu})"
                    for ti, nu in zip(pr_title[merged], pr_number[merged], strict=True)
                ],
                dtype=object,
            ),
        ]
    )
    versions = pd.DataFrame({"_key": np.arange(len(sha)), "_t": t})

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        dates = iso(t[k])
        commit = [
            dumps(
                {"author": {"date": d, "email": team.email[a], "name": team.name[a]}, "message": m}
            )
            for d, a, m in zip(dates, author[k], message[k], strict=True)
        ]
        return {
            "sha": sha[k],
            "repository": team.repo_full[repo[k]],
            "branch": np.full(len(k), "main", dtype=object),
            "created_at": t[k],
            "commit": commit,
            "author": np.where(no_account[k], None, team.user_json[author[k]]),
        }

    return emit(versions, render, world, after_t)


def _issue_rows(world, team, prs, issues, issue_id, number, pr_title, pr_url, after_t) -> Rows:
    n_pr, n_is = len(prs["created"]), len(issues["created"])
    # Keys 0..n_pr-1 are the PRs' issue records, n_pr.. the plain issues.
    pr_closing = np.flatnonzero(prs["outcome"] != OPEN)
    is_closing = np.flatnonzero(issues["closed"] != NEVER)
    has_comment = np.flatnonzero(
        (issues["comments"] > 0) & (issues["comment_t"] < issues["closed"])
    )
    versions = event_versions(
        [
            (np.arange(n_pr), prs["created"], {"closed": False, "commented": False}),
            (pr_closing, prs["closed"][pr_closing], {"closed": True, "commented": False}),
            (n_pr + np.arange(n_is), issues["created"], {"closed": False, "commented": False}),
            (
                n_pr + has_comment,
                issues["comment_t"][has_comment],
                {"closed": False, "commented": True},
            ),
            (n_pr + is_closing, issues["closed"][is_closing], {"closed": True, "commented": True}),
        ]
    )
    author_json = np.array(
        [
            team.user_json[a]
            if a >= 0
            else dumps({"id": 50_000_000 - a, "login": f"user{-a}", "type": "User"})
            for a in issues["author"].tolist()
        ],
        dtype=object,
    )
    title = np.concatenate([pr_title, np.array(ISSUE_TOPICS, dtype=object)[issues["topic"]]])
    user = np.concatenate([team.user_json[prs["author"]], author_json])
    repo = np.concatenate([prs["repo"], issues["repo"]])
    created = np.concatenate([prs["created"], issues["created"]])
    closed_t = np.concatenate([prs["closed"], issues["closed"]])
    labels = np.concatenate(
        [_label_json(world, _PR_ID_BASE + np.arange(n_pr)), _label_json(world, issue_id[n_pr:])]
    )
    html = np.array(
        [
            u.replace("api.github.com/repos", "github.com").replace("/pulls/", "/pull/")
            for u in pr_url
        ],
        dtype=object,
    )
    merged_iso = iso(np.where(prs["outcome"] == MERGED, prs["closed"], 0))

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        closed = latest["closed"].to_numpy()
        is_pr = k < n_pr
        j = np.minimum(k, n_pr - 1) if n_pr else k
        i = np.maximum(k - n_pr, 0)
        pull_request = [
            dumps(
                {
                    "html_url": html[jj],
                    "merged_at": merged_iso[jj] if c and prs["outcome"][jj] == MERGED else None,
                    "url": pr_url[jj],
                }
            )
            if p
            else None
            for p, jj, c in zip(is_pr, j, closed, strict=True)
        ]
        comments = np.where(
            is_pr | ~latest["commented"].to_numpy(), 0, issues["comments"][i] if n_is else 0
        )
        reason = np.where(issues["not_planned"][i] if n_is else False, "not_planned", "completed")
        return {
            "id": issue_id[k],
            "number": number[k],
            "repository": team.repo_full[repo[k]],
            "state": np.where(closed, "closed", "open").astype(object),
            "state_reason": np.where(closed & ~is_pr, reason, None),
            "title": title[k],
            "user": user[k],
            "labels": labels[k],
            "comments": comments.astype(np.int64),
            "created_at": created[k],
            "updated_at": latest["_t"].to_numpy(),
            "closed_at": np.where(closed, closed_t[k], np.nan),
            "pull_request": pull_request,
        }

    return emit(versions, render, world, after_t)


def _repository_rows(world, team, prs, issues, direct, after_t) -> Rows:
    n_repos = len(team.repo_name)
    merged = prs["outcome"] == MERGED
    push_t = np.concatenate([direct["created"], prs["closed"][merged]])
    push_repo = np.concatenate([direct["repo"], prs["repo"][merged]])
    # Each repository's state just before history starts, then a version per push.
    before = world.start_t - HOUR * (1 + np.arange(n_repos))
    versions = pd.DataFrame(
        {
            "_key": np.concatenate([np.arange(n_repos), push_repo]),
            "_t": np.concatenate([before, push_t]),
        }
    )
    # Stars arrive daily; open issues (PRs included) are counted at each version's moment.
    stars = np.stack(
        [
            world.rng(P_GITHUB_REPO_DAY, d).poisson(STARS_PER_DAY * world.volume, n_repos)
            for d in range(world.last_day + 1)
        ]
    )
    stars_by_day = np.vstack([np.zeros((1, n_repos), np.int64), np.cumsum(stars, axis=0)])
    item_repo = np.concatenate([prs["repo"], issues["repo"]])
    item_open = np.concatenate([prs["created"], issues["created"]])
    item_close = np.concatenate([prs["closed"], issues["closed"]])
    opened = [np.sort(item_open[item_repo == r]) for r in range(n_repos)]
    closed = [np.sort(item_close[item_repo == r]) for r in range(n_repos)]

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        t = latest["_t"].to_numpy()
        day = np.clip((t - world.start_t) // SECONDS_PER_DAY, -1, world.last_day)
        open_count = np.array(
            [
                np.searchsorted(opened[r], tt, "right") - np.searchsorted(closed[r], tt, "right")
                for r, tt in zip(k, t, strict=True)
            ],
            dtype=np.int64,
        )
        return {
            "id": team.repo_id[k],
            "name": team.repo_name[k],
            "full_name": team.repo_full[k],
            "owner": np.full(len(k), team.owner_json, dtype=object),
            "private": np.ones(len(k), bool),
            "fork": np.zeros(len(k), bool),
            "archived": np.zeros(len(k), bool),
            "default_branch": np.full(len(k), "main", dtype=object),
            "language": team.repo_language[k],
            "stargazers_count": team.repo_stars[k] + stars_by_day[day + 1, k],
            "forks_count": (team.repo_stars[k] + stars_by_day[day + 1, k]) // 12,
            "open_issues_count": open_count,
            "created_at": team.repo_created[k],
            "updated_at": t,
            "pushed_at": t,
        }

    return emit(versions, render, world, after_t)
