//! Read planning: the registers a device's points need, coalesced into as few
//! requests as the protocol and the configured gap allow.

use crate::config::{PointConfig, RegisterTable};

/// One Modbus read request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    pub table: RegisterTable,
    pub start: u16,
    pub count: u16,
}

impl ReadRange {
    fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }
}

/// Plans the reads for `points`: every register a point or its scale factor
/// needs is covered; adjacent spans merge while the gap between them is at
/// most `max_gap` and the merged read stays within `max_read` registers.
pub fn plan(points: &[PointConfig], max_gap: u16, max_read: u16) -> Vec<ReadRange> {
    let mut spans: Vec<(RegisterTable, u32, u32)> = Vec::new();
    for p in points {
        let start = u32::from(p.address);
        spans.push((p.table, start, start + u32::from(p.data_type.registers())));
        if let Some(sf) = p.scale_factor_address {
            spans.push((p.table, u32::from(sf), u32::from(sf) + 1));
        }
    }
    spans.sort_unstable();
    let mut out: Vec<ReadRange> = Vec::new();
    for (table, start, end) in spans {
        if let Some(last) = out.last_mut()
            && last.table == table
            && start <= last.end() + u32::from(max_gap)
            && end.max(last.end()) - u32::from(last.start) <= u32::from(max_read)
        {
            let new_end = end.max(last.end());
            last.count = (new_end - u32::from(last.start)) as u16;
            continue;
        }
        // Validation guarantees start < 65536 and a span fits one read.
        out.push(ReadRange {
            table,
            start: start as u16,
            count: (end - start) as u16,
        });
    }
    out
}

/// The registers read in one poll, looked up by table and address.
#[derive(Debug, Default)]
pub struct Registers {
    blocks: Vec<(ReadRange, Vec<u16>)>,
}

impl Registers {
    pub fn push(&mut self, range: ReadRange, values: Vec<u16>) {
        self.blocks.push((range, values));
    }

    /// `n` registers from `addr`, if one read covered them.
    pub fn get(&self, table: RegisterTable, addr: u16, n: u16) -> Option<&[u16]> {
        self.blocks.iter().find_map(|(r, v)| {
            let (a, n) = (u32::from(addr), u32::from(n));
            if r.table == table && a >= u32::from(r.start) && a + n <= r.end() {
                let off = (a - u32::from(r.start)) as usize;
                v.get(off..off + n as usize)
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{DataType, Order};

    fn pt(address: u16, data_type: DataType, sf: Option<u16>, table: RegisterTable) -> PointConfig {
        PointConfig {
            name: format!("p{address}"),
            address,
            table,
            data_type,
            byte_order: Order::Big,
            word_order: Order::Big,
            scale: 1.0,
            offset: 0.0,
            scale_factor_address: sf,
            unit: String::new(),
        }
    }

    const H: RegisterTable = RegisterTable::Holding;

    #[test]
    fn adjacent_registers_become_one_read() {
        let pts = [
            pt(40084, DataType::I16, Some(40085), H),
            pt(40086, DataType::U16, Some(40087), H),
            pt(40094, DataType::Acc32, Some(40096), H),
        ];
        assert_eq!(
            plan(&pts, 16, 125),
            vec![ReadRange {
                table: H,
                start: 40084,
                count: 13
            }]
        );
    }

    #[test]
    fn a_gap_wider_than_allowed_splits_the_read() {
        let pts = [
            pt(100, DataType::U16, None, H),
            pt(120, DataType::U32, None, H),
        ];
        assert_eq!(plan(&pts, 19, 125).len(), 1);
        assert_eq!(
            plan(&pts, 18, 125),
            vec![
                ReadRange {
                    table: H,
                    start: 100,
                    count: 1
                },
                ReadRange {
                    table: H,
                    start: 120,
                    count: 2
                }
            ]
        );
    }

    #[test]
    fn reads_never_exceed_the_size_limit_and_tables_never_mix() {
        let mut pts: Vec<_> = (0..300u16).map(|i| pt(i, DataType::U16, None, H)).collect();
        pts.push(pt(5, DataType::U16, None, RegisterTable::Input));
        let ranges = plan(&pts, 0, 125);
        assert!(ranges.iter().all(|r| r.count <= 125));
        assert_eq!(
            ranges
                .iter()
                .filter(|r| r.table == H)
                .map(|r| r.count as u32)
                .sum::<u32>(),
            300
        );
        assert!(ranges.contains(&ReadRange {
            table: RegisterTable::Input,
            start: 5,
            count: 1
        }));
    }

    #[test]
    fn overlapping_points_are_covered_once() {
        let pts = [
            pt(10, DataType::F64, None, H),
            pt(12, DataType::U32, None, H),
        ];
        assert_eq!(
            plan(&pts, 0, 125),
            vec![ReadRange {
                table: H,
                start: 10,
                count: 4
            }]
        );
    }

    #[test]
    fn registers_lookup_respects_block_bounds() {
        let mut r = Registers::default();
        r.push(
            ReadRange {
                table: H,
                start: 10,
                count: 3,
            },
            vec![1, 2, 3],
        );
        assert_eq!(r.get(H, 11, 2), Some(&[2, 3][..]));
        assert_eq!(r.get(H, 12, 2), None);
        assert_eq!(r.get(RegisterTable::Input, 10, 1), None);
    }
}
