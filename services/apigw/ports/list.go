package ports

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/apigw/readmodel"
	"github.com/gin-gonic/gin"
)

// MaxLimit caps a page (Octavia's pagination_max_limit default).
const MaxLimit = 1000

// reserved query parameters are not field filters.
var reserved = map[string]bool{"limit": true, "marker": true, "page_reverse": true, "sort_key": true, "sort_dir": true,
	"sort": true, "fields": true, "tags": true, "tags-any": true, "not-tags": true, "not-tags-any": true, "cascade": true}

type sortKey struct {
	key  string
	desc bool
}

// listQuery is a parsed Octavia list query.
type listQuery struct {
	filters                            map[string][]string
	tags, tagsAny, notTags, notTagsAny []string
	sort                               []sortKey
	limit                              int
	marker                             string
	reverse                            bool
	fields                             []string
}

func (q listQuery) needsMaps() bool {
	return len(q.filters) > 0 || len(q.sort) > 0 || len(q.fields) > 0
}

var fieldCache sync.Map // reflect.Type → map[string]bool

// fieldsOf lists the JSON field names of a view type.
func fieldsOf(t reflect.Type) map[string]bool {
	if v, ok := fieldCache.Load(t); ok {
		return v.(map[string]bool)
	}
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	fieldCache.Store(t, out)
	return out
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// parseList validates a list query against the view's fields.
func parseList(q url.Values, fields map[string]bool) (listQuery, error) {
	lq := listQuery{filters: map[string][]string{}, limit: MaxLimit}
	for k, v := range q {
		if reserved[k] {
			continue
		}
		if !fields[k] {
			return lq, domain.Invalid(k, "unknown filter")
		}
		lq.filters[k] = v
	}
	lq.tags, lq.tagsAny, lq.notTags, lq.notTagsAny = splitList(q["tags"]), splitList(q["tags-any"]), splitList(q["not-tags"]), splitList(q["not-tags-any"])
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return lq, domain.Invalid("limit", "%q is not a non-negative integer", v)
		}
		if n > 0 && n < MaxLimit {
			lq.limit = n
		}
	}
	lq.marker = q.Get("marker")
	if v := q.Get("page_reverse"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return lq, domain.Invalid("page_reverse", "%q is not a boolean", v)
		}
		lq.reverse = b
	}
	keys := splitList(q["sort_key"])
	dirs := splitList(q["sort_dir"])
	for i, k := range keys {
		dir := "asc"
		if i < len(dirs) {
			dir = dirs[i]
		} else if len(dirs) > 0 {
			dir = dirs[len(dirs)-1]
		}
		lq.sort = append(lq.sort, sortKey{key: k})
		if err := setDir(&lq.sort[len(lq.sort)-1], dir); err != nil {
			return lq, err
		}
	}
	for _, s := range splitList(q["sort"]) {
		k, dir, _ := strings.Cut(s, ":")
		if dir == "" {
			dir = "asc"
		}
		lq.sort = append(lq.sort, sortKey{key: k})
		if err := setDir(&lq.sort[len(lq.sort)-1], dir); err != nil {
			return lq, err
		}
	}
	for _, s := range lq.sort {
		if !fields[s.key] {
			return lq, domain.Invalid("sort_key", "unknown sort key %q", s.key)
		}
	}
	lq.fields = splitList(q["fields"])
	for _, f := range lq.fields {
		if !fields[f] {
			return lq, domain.Invalid("fields", "unknown field %q", f)
		}
	}
	return lq, nil
}

func setDir(s *sortKey, dir string) error {
	switch strings.ToLower(dir) {
	case "asc":
	case "desc":
		s.desc = true
	default:
		return domain.Invalid("sort_dir", "%q is not asc or desc", dir)
	}
	return nil
}

func asString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func matchFilter(v any, want []string) bool {
	got := asString(v)
	for _, w := range want {
		if b, ok := v.(bool); ok {
			if wb, err := strconv.ParseBool(w); err == nil && wb == b {
				return true
			}
			continue
		}
		if got == w {
			return true
		}
	}
	return false
}

func compare(a, b any) int {
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	}
	if a == nil && b != nil {
		return -1
	}
	if b == nil && a != nil {
		return 1
	}
	return strings.Compare(asString(a), asString(b))
}

func tagsMatch(tags []string, q listQuery) bool {
	for _, t := range q.tags {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	if len(q.tagsAny) > 0 && !slices.ContainsFunc(q.tagsAny, func(t string) bool { return slices.Contains(tags, t) }) {
		return false
	}
	if len(q.notTags) > 0 && !slices.ContainsFunc(q.notTags, func(t string) bool { return !slices.Contains(tags, t) }) {
		return false
	}
	for _, t := range q.notTagsAny {
		if slices.Contains(tags, t) {
			return false
		}
	}
	return true
}

type entry struct {
	id   string
	item any
	m    map[string]any
}

// respondList filters, sorts, paginates and writes items (in creation
// order) under the collection key, with Octavia's "<collection>_links".
func respondList[T any](c *gin.Context, collection string, items []T, idOf func(T) string, tagsOf func(T) []string) {
	var zero T
	fields := fieldsOf(reflect.TypeOf(zero))
	virt := readmodel.FilterFields(zero)
	if len(virt) > 0 {
		fields = maps.Clone(fields)
		for k := range virt {
			fields[k] = true
		}
	}
	q, err := parseList(c.Request.URL.Query(), fields)
	if err != nil {
		fail(c, err)
		return
	}
	list := make([]entry, 0, len(items))
	for _, it := range items {
		if !tagsMatch(tagsOf(it), q) {
			continue
		}
		e := entry{id: idOf(it), item: it}
		if q.needsMaps() {
			b, _ := json.Marshal(it)
			_ = json.Unmarshal(b, &e.m)
			for k, v := range readmodel.FilterFields(it) {
				e.m[k] = v
			}
			ok := true
			for k, want := range q.filters {
				if !matchFilter(e.m[k], want) {
					ok = false
					break
				}
			}
			if !ok {
				continue
			}
		}
		list = append(list, e)
	}
	if len(q.sort) > 0 {
		slices.SortStableFunc(list, func(a, b entry) int {
			for _, s := range q.sort {
				if r := compare(a.m[s.key], b.m[s.key]); r != 0 {
					if s.desc {
						return -r
					}
					return r
				}
			}
			return 0
		})
	}
	if q.reverse {
		slices.Reverse(list)
	}
	start := 0
	if q.marker != "" {
		i := slices.IndexFunc(list, func(e entry) bool { return e.id == q.marker })
		if i < 0 {
			fail(c, domain.Invalid("marker", "marker %q not found", q.marker))
			return
		}
		start = i + 1
	}
	end := min(start+q.limit, len(list))
	pageItems := list[start:end]
	more := end < len(list)
	out := make([]any, len(pageItems))
	for i, e := range pageItems {
		out[i] = selectFields(e, q.fields)
	}
	var links []map[string]string
	if len(pageItems) > 0 {
		first, last := pageItems[0].id, pageItems[len(pageItems)-1].id
		if q.reverse {
			slices.Reverse(out)
			first, last = last, first
			if more {
				links = append(links, map[string]string{"rel": "previous", "href": pageURL(c, first, true)})
			}
			links = append(links, map[string]string{"rel": "next", "href": pageURL(c, last, false)})
		} else {
			if more {
				links = append(links, map[string]string{"rel": "next", "href": pageURL(c, last, false)})
			}
			if q.marker != "" {
				links = append(links, map[string]string{"rel": "previous", "href": pageURL(c, first, true)})
			}
		}
	}
	if links == nil {
		links = []map[string]string{}
	}
	c.JSON(200, gin.H{collection: out, collection + "_links": links})
}

func selectFields(e entry, fields []string) any {
	if len(fields) == 0 {
		return e.item
	}
	out := map[string]any{}
	for _, f := range fields {
		out[f] = e.m[f]
	}
	return out
}

func pageURL(c *gin.Context, marker string, reverse bool) string {
	q := c.Request.URL.Query()
	q.Set("marker", marker)
	if reverse {
		q.Set("page_reverse", "true")
	} else {
		q.Del("page_reverse")
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s?%s", scheme, c.Request.Host, c.Request.URL.Path, q.Encode())
}

// respondOne writes one view under its wrapper, honouring ?fields=.
func respondOne(c *gin.Context, status int, wrapper string, v any) {
	fields := splitList(c.QueryArray("fields"))
	if len(fields) == 0 {
		c.JSON(status, gin.H{wrapper: v})
		return
	}
	allowed := fieldsOf(reflect.TypeOf(v))
	var m map[string]any
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &m)
	out := map[string]any{}
	for _, f := range fields {
		if !allowed[f] {
			fail(c, domain.Invalid("fields", "unknown field %q", f))
			return
		}
		out[f] = m[f]
	}
	c.JSON(status, gin.H{wrapper: out})
}
