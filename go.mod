module github.com/flexgw/flexgw

go 1.26
