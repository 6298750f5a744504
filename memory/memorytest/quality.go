package memorytest

import (
	"testing"

	"github.com/openintern/openintern/memory"
)

// qualityCorpus: facts in English and Chinese. The queries paraphrase them,
// so a search must match on meaning and morphology, not exact words.
var qualityCorpus = []string{
	"The quarterly sales meeting was moved to Thursday afternoon.",
	"Our cat Miso is allergic to chicken-based food.",
	"The production database backups run nightly at 02:00 UTC.",
	"Bob prefers to be contacted by email rather than phone calls.",
	"The office wifi password was rotated last Monday.",
	"Vaccinations reduce the spread of infectious diseases.",
	"Statins lower cholesterol and may reduce cardiovascular mortality.",
	"The new logo uses a deep blue colour with an orange accent.",
	"公司年会定于十二月二十日在杭州举行。",
	"张伟对花生过敏，点餐时需要注意。",
	"服务器的证书将在下个月到期，需要提前续期。",
	"新员工入职培训为期三天，包括安全和合规课程。",
	"北京地铁票价上调的听证会已经结束。",
	"团队决定采用 PostgreSQL 作为主数据库。",
}

var qualityQueries = []struct {
	q    string
	want int
}{
	{"when is the sales meeting", 0},
	{"what food is the cat allergic to", 1},
	{"database backup schedule", 2},
	{"how should I contact Bob", 3},
	{"wifi password change", 4},
	{"vaccination and infectious disease", 5},
	{"does a statin help the heart", 6},
	{"logo colors", 7},
	{"年会在哪里举办", 8},
	{"谁对花生过敏", 9},
	{"证书什么时候过期", 10},
	{"入职培训多长时间", 11},
	{"地铁票价听证会", 12},
	{"主数据库用什么", 13},
}

// testQuality: every paraphrased query finds its fact first in hybrid mode,
// and hybrid is never worse than either leg alone (mean reciprocal rank).
func testQuality(t *testing.T, st memory.Store) {
	svc := newService(t, st, memory.NewHashEmbedder(0))
	ids := make([]string, len(qualityCorpus))
	for i, d := range qualityCorpus {
		ids[i] = write(t, svc, memory.WriteRequest{Scope: scopeA, Type: memory.TypeArchival, Text: d}).ID
	}
	mrr := map[string]float64{}
	for _, mode := range []string{memory.ModeHybrid, memory.ModeVector, memory.ModeFullText} {
		for _, c := range qualityQueries {
			res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: c.q, Mode: mode, TopK: 10})
			for r, h := range res {
				if h.ID == ids[c.want] {
					mrr[mode] += 1 / float64(r+1) / float64(len(qualityQueries))
					break
				}
			}
			if mode == memory.ModeHybrid && (len(res) == 0 || res[0].ID != ids[c.want]) {
				t.Errorf("hybrid %q: top is %v, want %s", c.q, res, ids[c.want])
			}
			if mode == memory.ModeHybrid {
				// As a turn's recall asks: few results from few candidates.
				few := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: c.q, TopK: 3, Candidates: 9})
				if len(few) == 0 || len(few) > 3 || few[0].ID != ids[c.want] {
					t.Errorf("hybrid %q with 9 candidates: %v, want %s first", c.q, few, ids[c.want])
				}
			}
		}
	}
	t.Logf("MRR: %v", mrr)
	if mrr[memory.ModeHybrid] < mrr[memory.ModeVector] || mrr[memory.ModeHybrid] < mrr[memory.ModeFullText] {
		t.Errorf("hybrid MRR below a single leg: %v", mrr)
	}
}
