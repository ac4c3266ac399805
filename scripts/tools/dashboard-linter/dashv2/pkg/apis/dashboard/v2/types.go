// Package v2 is a stand-in for Grafana's v2 dashboard schema types (see the
// go.mod beside it for why): only the fields dashboard-linter reads, with
// the JSON names of the published schema.
package v2

import (
	"encoding/json"
	"fmt"
)

// DashboardSpec is the spec of a v2 dashboard resource.
type DashboardSpec struct {
	Title       string                         `json:"title"`
	Editable    *bool                          `json:"editable,omitempty"`
	Elements    map[string]DashboardElement    `json:"elements"`
	Variables   []DashboardVariableKind        `json:"variables"`
	Annotations []DashboardAnnotationQueryKind `json:"annotations"`
}

// DashboardElement is one entry of spec.elements: a panel or a library
// panel reference (the latter is not linted, so only panels are kept).
type DashboardElement struct {
	PanelKind *DashboardPanelKind
}

// UnmarshalJSON picks the union member by its kind.
func (e *DashboardElement) UnmarshalJSON(b []byte) error {
	var k struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return err
	}
	if k.Kind != "Panel" {
		return nil
	}
	e.PanelKind = &DashboardPanelKind{}
	return json.Unmarshal(b, e.PanelKind)
}

// DashboardPanelKind is {"kind": "Panel", "spec": ...}.
type DashboardPanelKind struct {
	Kind string             `json:"kind"`
	Spec DashboardPanelSpec `json:"spec"`
}

// DashboardPanelSpec is one panel.
type DashboardPanelSpec struct {
	Id          float64                 `json:"id"`
	Title       string                  `json:"title"`
	Description string                  `json:"description"`
	Data        DashboardQueryGroupKind `json:"data"`
	VizConfig   DashboardVizConfigKind  `json:"vizConfig"`
}

// DashboardQueryGroupKind holds a panel's queries.
type DashboardQueryGroupKind struct {
	Kind string                  `json:"kind"`
	Spec DashboardQueryGroupSpec `json:"spec"`
}

// DashboardQueryGroupSpec lists a panel's queries.
type DashboardQueryGroupSpec struct {
	Queries []DashboardPanelQueryKind `json:"queries"`
}

// DashboardPanelQueryKind is one panel query.
type DashboardPanelQueryKind struct {
	Kind string                  `json:"kind"`
	Spec DashboardPanelQuerySpec `json:"spec"`
}

// DashboardPanelQuerySpec is a query with its refId.
type DashboardPanelQuerySpec struct {
	Query  DashboardDataQueryKind `json:"query"`
	RefId  string                 `json:"refId"`
	Hidden bool                   `json:"hidden"`
}

// DashboardDataQueryKind is a datasource query: group is the datasource
// type, spec its free-form payload ({"expr": ...}).
type DashboardDataQueryKind struct {
	Kind       string                 `json:"kind"`
	Group      string                 `json:"group"`
	Version    string                 `json:"version"`
	Datasource *DashboardDatasource   `json:"datasource,omitempty"`
	Spec       map[string]interface{} `json:"spec"`
}

// DashboardDatasource names the datasource a query uses.
type DashboardDatasource struct {
	Name *string `json:"name,omitempty"`
}

// DashboardVizConfigKind is the panel's visualization.
type DashboardVizConfigKind struct {
	Kind    string                 `json:"kind"`
	Group   string                 `json:"group"`
	Version string                 `json:"version"`
	Spec    DashboardVizConfigSpec `json:"spec"`
}

// DashboardVizConfigSpec holds the classic-shaped options and fieldConfig.
type DashboardVizConfigSpec struct {
	Options     map[string]interface{} `json:"options"`
	FieldConfig map[string]interface{} `json:"fieldConfig"`
}

// DashboardVariableRefresh is when a variable's values are reloaded.
type DashboardVariableRefresh string

// Refresh values of the v2 schema.
const (
	DashboardVariableRefreshNever              DashboardVariableRefresh = "never"
	DashboardVariableRefreshOnDashboardLoad    DashboardVariableRefresh = "onDashboardLoad"
	DashboardVariableRefreshOnTimeRangeChanged DashboardVariableRefresh = "onTimeRangeChanged"
)

// DashboardVariableKind is the union of variable kinds; one member is set.
type DashboardVariableKind struct {
	QueryVariableKind      *QueryVariableKind
	DatasourceVariableKind *DatasourceVariableKind
	CustomVariableKind     *SimpleVariableKind
	IntervalVariableKind   *SimpleVariableKind
	ConstantVariableKind   *SimpleVariableKind
	TextVariableKind       *SimpleVariableKind
	AdhocVariableKind      *SimpleVariableKind
	GroupByVariableKind    *SimpleVariableKind
	SwitchVariableKind     *SimpleVariableKind
}

// UnmarshalJSON picks the union member by its kind.
func (v *DashboardVariableKind) UnmarshalJSON(b []byte) error {
	var k struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return err
	}
	var dst interface{}
	switch k.Kind {
	case "QueryVariable":
		v.QueryVariableKind = &QueryVariableKind{}
		dst = v.QueryVariableKind
	case "DatasourceVariable":
		v.DatasourceVariableKind = &DatasourceVariableKind{}
		dst = v.DatasourceVariableKind
	default:
		s := &SimpleVariableKind{}
		dst = s
		switch k.Kind {
		case "CustomVariable":
			v.CustomVariableKind = s
		case "IntervalVariable":
			v.IntervalVariableKind = s
		case "ConstantVariable":
			v.ConstantVariableKind = s
		case "TextVariable":
			v.TextVariableKind = s
		case "AdhocVariable":
			v.AdhocVariableKind = s
		case "GroupByVariable":
			v.GroupByVariableKind = s
		case "SwitchVariable":
			v.SwitchVariableKind = s
		default:
			return fmt.Errorf("unknown variable kind %q", k.Kind)
		}
	}
	return json.Unmarshal(b, dst)
}

// QueryVariableKind is a variable filled by a datasource query.
type QueryVariableKind struct {
	Kind string            `json:"kind"`
	Spec QueryVariableSpec `json:"spec"`
}

// QueryVariableSpec is a query variable's settings.
type QueryVariableSpec struct {
	Name     string                   `json:"name"`
	Label    *string                  `json:"label,omitempty"`
	Multi    bool                     `json:"multi"`
	AllValue *string                  `json:"allValue,omitempty"`
	Refresh  DashboardVariableRefresh `json:"refresh"`
	Query    DashboardDataQueryKind   `json:"query"`
}

// DatasourceVariableKind is a variable choosing a datasource.
type DatasourceVariableKind struct {
	Kind string                 `json:"kind"`
	Spec DatasourceVariableSpec `json:"spec"`
}

// DatasourceVariableSpec is a datasource variable's settings.
type DatasourceVariableSpec struct {
	Name     string                   `json:"name"`
	Label    *string                  `json:"label,omitempty"`
	Multi    bool                     `json:"multi"`
	AllValue *string                  `json:"allValue,omitempty"`
	Refresh  DashboardVariableRefresh `json:"refresh"`
	PluginId string                   `json:"pluginId"`
}

// SimpleVariableKind covers the variable kinds the linter reads only
// names, labels and a query string from.
type SimpleVariableKind struct {
	Kind string             `json:"kind"`
	Spec SimpleVariableSpec `json:"spec"`
}

// SimpleVariableSpec is those kinds' settings.
type SimpleVariableSpec struct {
	Name     string  `json:"name"`
	Label    *string `json:"label,omitempty"`
	Multi    bool    `json:"multi"`
	AllValue *string `json:"allValue,omitempty"`
	Query    string  `json:"query"`
}

// DashboardAnnotationQueryKind is one annotation query.
type DashboardAnnotationQueryKind struct {
	Kind string                       `json:"kind"`
	Spec DashboardAnnotationQuerySpec `json:"spec"`
}

// DashboardAnnotationQuerySpec is an annotation's name and query.
type DashboardAnnotationQuerySpec struct {
	Name  string                 `json:"name"`
	Query DashboardDataQueryKind `json:"query"`
}
