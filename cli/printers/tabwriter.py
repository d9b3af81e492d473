"""A port of Go's text/tabwriter, the aligner behind every kubectl table and `describe`.

Text is written with tabs between cells; `flush()` returns it with the cells
padded into columns. As in Go, a cell is the text *before* a tab, so the last
piece of a line is never padded, and a column lines up only across a block of
consecutive lines that all have a cell in that column: a line without a tab
(`Containers:`) starts a new block. That rule is what makes kubectl describe's
nested sections line up the way they do.

kubectl's settings: tables use min_width=6, padding=3 and remember widths
between flushes (so `get -w` rows stay under their header); describe uses
min_width=0, padding=2.
"""

from __future__ import annotations


class TabWriter:
    def __init__(self, *, min_width: int = 0, padding: int = 2, remember_widths: bool = False):
        self.min_width = min_width
        self.padding = padding
        self.remember_widths = remember_widths
        self._text = ""
        self._max_widths: list[int] = []  # per column, when remembering widths

    def write(self, text: str) -> None:
        self._text += text

    def flush(self) -> str:
        """The aligned text written since the last flush."""
        text, self._text = self._text, ""
        if not text:
            return ""
        trailing_newline = text.endswith("\n")
        lines = [line.split("\t") for line in (text[:-1] if trailing_newline else text).split("\n")]
        out: list[str] = []
        self._format(lines, [], 0, len(lines), out)
        return "\n".join(out) + ("\n" if trailing_newline else "")

    # Go's Writer.format: find blocks of lines sharing column `len(widths)`, size
    # that column, then format the columns to its right within the block.
    def _format(self, lines: list[list[str]], widths: list[int], line0: int, line1: int, out: list[str]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            self._write_lines(lines, widths, line0, this, out)
            line0 = this
            width = self.min_width
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + self.padding)
                this += 1
            if self.remember_widths:
                while len(self._max_widths) <= column:
                    self._max_widths.append(0)
                width = self._max_widths[column] = max(width, self._max_widths[column])
            widths.append(width)
            self._format(lines, widths, line0, this, out)
            widths.pop()
            line0 = this
        self._write_lines(lines, widths, line0, line1, out)

    @staticmethod
    def _write_lines(lines: list[list[str]], widths: list[int], line0: int, line1: int, out: list[str]) -> None:
        for cells in lines[line0:line1]:
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell.ljust(widths[j]) if j < len(widths) and j < len(cells) - 1 else cell)
            out.append("".join(parts))


def align(rows: list[list[str]], *, min_width: int = 6, padding: int = 3) -> str:
    """Rows of cells as a kubectl table (`NAME   READY   STATUS`)."""
    writer = TabWriter(min_width=min_width, padding=padding)
    for row in rows:
        writer.write("\t".join(row) + "\n")
    return writer.flush()
