// Package fakegithub generates GitHub-like API objects (organizations and
// repositories shaped as GitHub's REST API returns them), deterministically, for
// benchmarks and tests that need realistic items in bulk: about a hundred fields and
// 5 KB per repository, of which a typical mapping reads a handful.
package fakegithub

import (
	"fmt"
	"io"
	"strconv"
)

// RepositoryOptions shape the generated repositories.
type RepositoryOptions struct {
	// Orgs is the number of organizations repositories are spread over (default 10).
	Orgs int
	// Revision changes the generated content (description, updated_at) of the items
	// whose index is a multiple of RevisionEvery, to model a resync where some changed.
	Revision      int
	RevisionEvery int
}

// OrgLogin names organization i.
func OrgLogin(i int) string { return "org-" + strconv.Itoa(i) }

// AppendRepository appends repository i as one compact JSON object.
func AppendRepository(dst []byte, i int, o RepositoryOptions) []byte {
	orgs := o.Orgs
	if orgs <= 0 {
		orgs = 10
	}
	org := i % orgs
	login := OrgLogin(org)
	name := fmt.Sprintf("repo-%07d", i)
	full := login + "/" + name
	api := "https://api.github.com/repos/" + full
	rev := 0
	if o.RevisionEvery > 0 && i%o.RevisionEvery == 0 {
		rev = o.Revision
	}
	id := 100000000 + i
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, `,"node_id":"R_kgDO`...)
	dst = strconv.AppendInt(dst, int64(id*7919%999999937), 36)
	dst = append(dst, `","name":"`...)
	dst = append(dst, name...)
	dst = append(dst, `","full_name":"`...)
	dst = append(dst, full...)
	dst = append(dst, `","private":`...)
	dst = strconv.AppendBool(dst, i%3 == 0)
	dst = append(dst, `,"owner":{"login":"`...)
	dst = append(dst, login...)
	dst = append(dst, `","id":`...)
	dst = strconv.AppendInt(dst, int64(5000+org), 10)
	dst = append(dst, `,"node_id":"O_kgDOB`...)
	dst = strconv.AppendInt(dst, int64(org), 10)
	dst = append(dst, `","avatar_url":"https://avatars.githubusercontent.com/u/`...)
	dst = strconv.AppendInt(dst, int64(5000+org), 10)
	dst = append(dst, `?v=4","gravatar_id":"","url":"https://api.github.com/users/`...)
	for _, suffix := range []string{`","html_url":"https://github.com/`, `","followers_url":"https://api.github.com/users/`, `/followers","following_url":"https://api.github.com/users/`, `/following{/other_user}","gists_url":"https://api.github.com/users/`, `/gists{/gist_id}","starred_url":"https://api.github.com/users/`, `/starred{/owner}{/repo}","subscriptions_url":"https://api.github.com/users/`, `/subscriptions","organizations_url":"https://api.github.com/users/`, `/orgs","repos_url":"https://api.github.com/users/`, `/repos","events_url":"https://api.github.com/users/`, `/events{/privacy}","received_events_url":"https://api.github.com/users/`} {
		dst = append(dst, login...)
		dst = append(dst, suffix...)
	}
	dst = append(dst, login...)
	dst = append(dst, `/received_events","type":"Organization","user_view_type":"public","site_admin":false},"html_url":"https://github.com/`...)
	dst = append(dst, full...)
	dst = append(dst, `","description":`...)
	switch {
	case i%7 == 0:
		dst = append(dst, "null"...)
	default:
		dst = append(dst, `"Service `...)
		dst = append(dst, name...)
		dst = append(dst, ` handles the \"`...)
		dst = append(dst, []string{"billing", "search", "auth", "ingest", "catalog"}[i%5]...)
		dst = append(dst, `\" domain (revision `...)
		dst = strconv.AppendInt(dst, int64(rev), 10)
		dst = append(dst, `)"`...)
	}
	dst = append(dst, `,"fork":`...)
	dst = strconv.AppendBool(dst, i%11 == 0)
	dst = append(dst, `,"url":"`...)
	dst = append(dst, api...)
	for _, f := range []string{"forks", "keys{/key_id}", "collaborators{/collaborator}", "teams", "hooks", "issues/events{/number}", "events", "assignees{/user}", "branches{/branch}", "tags", "git/blobs{/sha}", "git/tags{/sha}", "git/refs{/sha}", "git/trees{/sha}", "statuses/{sha}", "languages", "stargazers", "contributors", "subscribers", "subscription", "commits{/sha}", "git/commits{/sha}", "comments{/number}", "issues/comments{/number}", "contents/{+path}", "compare/{base}...{head}", "merges", "{archive_format}{/ref}", "downloads", "issues{/number}", "pulls{/number}", "milestones{/number}", "notifications{?since,all,participating}", "labels{/name}", "releases{/id}", "deployments"} {
		dst = append(dst, `","`...)
		dst = append(dst, urlKey(f)...)
		dst = append(dst, `_url":"`...)
		dst = append(dst, api...)
		dst = append(dst, '/')
		dst = append(dst, f...)
	}
	dst = append(dst, `","created_at":"2019-0`...)
	dst = strconv.AppendInt(dst, int64(1+i%9), 10)
	dst = append(dst, `-1`...)
	dst = strconv.AppendInt(dst, int64(i%10), 10)
	dst = append(dst, `T12:00:00Z","updated_at":"2026-11-0`...)
	dst = strconv.AppendInt(dst, int64(1+rev%9), 10)
	dst = append(dst, `T08:30:00Z","pushed_at":"2026-10-30T17:45:12Z","git_url":"git://github.com/`...)
	dst = append(dst, full...)
	dst = append(dst, `.git","ssh_url":"git@github.com:`...)
	dst = append(dst, full...)
	dst = append(dst, `.git","clone_url":"https://github.com/`...)
	dst = append(dst, full...)
	dst = append(dst, `.git","svn_url":"https://github.com/`...)
	dst = append(dst, full...)
	dst = append(dst, `","homepage":null,"size":`...)
	dst = strconv.AppendInt(dst, int64(i*37%100000), 10)
	dst = append(dst, `,"stargazers_count":`...)
	dst = strconv.AppendInt(dst, int64(i%500), 10)
	dst = append(dst, `,"watchers_count":`...)
	dst = strconv.AppendInt(dst, int64(i%500), 10)
	dst = append(dst, `,"language":`...)
	if lang := []string{"Go", "Python", "", "TypeScript", "Rust", "Java"}[i%6]; lang == "" {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = append(dst, lang...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"has_issues":true,"has_projects":true,"has_downloads":true,"has_wiki":false,"has_pages":false,"has_discussions":false,"forks_count":`...)
	dst = strconv.AppendInt(dst, int64(i%40), 10)
	dst = append(dst, `,"mirror_url":null,"archived":false,"disabled":false,"open_issues_count":`...)
	dst = strconv.AppendInt(dst, int64(i%23), 10)
	dst = append(dst, `,"license":{"key":"apache-2.0","name":"Apache License 2.0","spdx_id":"Apache-2.0","url":"https://api.github.com/licenses/apache-2.0","node_id":"MDc6TGljZW5zZTI="},"allow_forking":true,"is_template":false,"web_commit_signoff_required":false,"topics":["platform","`...)
	dst = append(dst, []string{"billing", "search", "auth", "ingest", "catalog"}[i%5]...)
	dst = append(dst, `"],"visibility":"`...)
	if i%3 == 0 {
		dst = append(dst, "private"...)
	} else {
		dst = append(dst, "public"...)
	}
	dst = append(dst, `","forks":`...)
	dst = strconv.AppendInt(dst, int64(i%40), 10)
	dst = append(dst, `,"open_issues":`...)
	dst = strconv.AppendInt(dst, int64(i%23), 10)
	dst = append(dst, `,"watchers":`...)
	dst = strconv.AppendInt(dst, int64(i%500), 10)
	dst = append(dst, `,"default_branch":"`...)
	dst = append(dst, []string{"main", "main", "master", "develop"}[i%4]...)
	dst = append(dst, `","permissions":{"admin":false,"maintain":false,"push":true,"triage":true,"pull":true},"security_and_analysis":{"secret_scanning":{"status":"enabled"},"secret_scanning_push_protection":{"status":"enabled"},"dependabot_security_updates":{"status":"disabled"}}}`...)
	return dst
}

// urlKey turns an API path template into GitHub's field name: "git/blobs{/sha}" is
// "blobs", "issues/events{/number}" is "issue_events".
func urlKey(f string) string {
	end := len(f)
	for j, c := range f {
		if c == '{' {
			end = j
			break
		}
	}
	k := f[:end]
	switch k {
	case "git/blobs", "git/tags", "git/refs", "git/trees", "git/commits":
		return "git_" + k[4:]
	case "issues/events":
		return "issue_events"
	case "issues/comments":
		return "issue_comment"
	case "statuses/":
		return "statuses"
	case "contents/":
		return "contents"
	case "compare/":
		return "compare"
	case "":
		return "archive"
	}
	return k
}

// WriteRepositoriesNDJSON writes n repositories, one per line.
func WriteRepositoriesNDJSON(w io.Writer, n int, o RepositoryOptions) error {
	buf := make([]byte, 0, 64<<10)
	for i := range n {
		buf = AppendRepository(buf, i, o)
		buf = append(buf, '\n')
		if len(buf) > 60<<10 || i == n-1 {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("writing repository %d: %w", i, err)
			}
			buf = buf[:0]
		}
	}
	return nil
}
