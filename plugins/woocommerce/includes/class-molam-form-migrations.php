<?php
/**
 * The migration policy (expand / contract / refused) and the migration runner.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * A migration that the policy refuses, or a migration that failed.
 */
class Molam_Form_Migration_Error extends RuntimeException {
}

/**
 * The agent's migration policy (issue 9), decided at staging, before checkout pauses:
 *
 * - expand: CREATE TABLE, CREATE INDEX, ADD COLUMN nullable or with a default, ADD INDEX/KEY,
 *   INSERT of the plugin's own option rows. An expand-only release takes no table copy; its
 *   rollback puts files and option rows back, the additive schema stays (and stays recorded).
 * - contract: anything else (DROP, RENAME, MODIFY/CHANGE, UPDATE/DELETE/REPLACE, NOT NULL
 *   without a default, constraints, statements it cannot parse). It needs
 *   `migrations/down/<same file name>`, run on rollback so that rows written meanwhile stay.
 * - refused: a statement naming a table outside the plugin's set (or DROP DATABASE).
 */
class Molam_Form_Migrations {

	const EXPAND   = 'expand';
	const CONTRACT = 'contract';
	const REFUSED  = 'refused';

	// MariaDB errors meaning "this additive step is already there" (re-run after a crash).
	const ALREADY_APPLIED = array( 1050, 1060, 1061 );
	// MariaDB errors meaning "this reverse step is already done" (re-run after a crash).
	const ALREADY_REVERTED = array( 1051, 1091, 1146 );

	/**
	 * Split SQL into statements on `;` outside quotes, dropping comments.
	 *
	 * @param string $sql SQL text.
	 * @return string[]
	 */
	public static function split( $sql ) {
		$out   = array();
		$cur   = '';
		$len   = strlen( $sql );
		$quote = null;
		for ( $i = 0; $i < $len; $i++ ) {
			$c = $sql[ $i ];
			if ( null !== $quote ) {
				$cur .= $c;
				if ( '\\' === $c && '`' !== $quote && $i + 1 < $len ) {
					$cur .= $sql[ ++$i ];
				} elseif ( $c === $quote ) {
					$quote = null;
				}
				continue;
			}
			if ( "'" === $c || '"' === $c || '`' === $c ) {
				$quote = $c;
				$cur  .= $c;
			} elseif ( '#' === $c || ( '-' === $c && '--' === substr( $sql, $i, 2 ) && ( $i + 2 >= $len || ctype_space( $sql[ $i + 2 ] ) ) ) ) {
				$end = strpos( $sql, "\n", $i );
				$i   = false === $end ? $len : $end;
				$cur .= ' ';
			} elseif ( '/' === $c && '/*' === substr( $sql, $i, 2 ) ) {
				$end = strpos( $sql, '*/', $i + 2 );
				$i   = false === $end ? $len : $end + 1;
				$cur .= ' ';
			} elseif ( ';' === $c ) {
				$out[] = $cur;
				$cur   = '';
			} else {
				$cur .= $c;
			}
		}
		$out[] = $cur;
		return array_values( array_filter( array_map( 'trim', $out ), 'strlen' ) );
	}

	/**
	 * Split on commas at parenthesis depth 0, outside quotes.
	 *
	 * @param string $text Text.
	 * @return string[]
	 */
	private static function top_level_commas( $text ) {
		$parts = array();
		$depth = 0;
		$cur   = '';
		$quote = null;
		$len   = strlen( $text );
		for ( $i = 0; $i < $len; $i++ ) {
			$c = $text[ $i ];
			if ( null !== $quote ) {
				$cur .= $c;
				if ( $c === $quote ) {
					$quote = null;
				}
				continue;
			}
			if ( "'" === $c || '"' === $c || '`' === $c ) {
				$quote = $c;
			} elseif ( '(' === $c ) {
				++$depth;
			} elseif ( ')' === $c ) {
				--$depth;
			} elseif ( ',' === $c && 0 === $depth ) {
				$parts[] = trim( $cur );
				$cur     = '';
				continue;
			}
			$cur .= $c;
		}
		$parts[] = trim( $cur );
		return array_values( array_filter( $parts, 'strlen' ) );
	}

	/**
	 * Table name of an identifier (`db`.`t`, `t`, t); null when it is not one.
	 *
	 * @param string $ident Identifier.
	 * @return string|null
	 */
	private static function table_name( $ident ) {
		$ident = trim( $ident );
		if ( ! preg_match( '/^(?:(`[^`]+`|[A-Za-z0-9_$]+)\.)?(`[^`]+`|[A-Za-z0-9_$]+)$/', $ident, $m ) ) {
			return null;
		}
		return trim( $m[2], '`' );
	}

	const IDENT = '((?:(?:`[^`]+`|[A-Za-z0-9_$]+)\.)?(?:`[^`]+`|[A-Za-z0-9_$]+))';

	/**
	 * Classify one statement.
	 *
	 * @param string $stmt          One SQL statement.
	 * @param array  $tables        The plugin's tables.
	 * @param string $options_table The options table (`wp_options`).
	 * @param string $option_prefix The plugin's own option rows start with this.
	 * @return array{0:string, 1:string} Class and the reason.
	 */
	public static function classify_statement( $stmt, $tables, $options_table = '', $option_prefix = '' ) {
		$s     = trim( preg_replace( '/\s+/', ' ', $stmt ) );
		$id    = self::IDENT;
		$owned = function ( $names ) use ( $tables ) {
			foreach ( $names as $n ) {
				if ( null === $n || ! in_array( $n, $tables, true ) ) {
					return $n ?? '?';
				}
			}
			return true;
		};
		$decide = function ( array $names, $class, $why ) use ( $owned ) {
			$ok = $owned( $names );
			return true === $ok
				? array( $class, $why )
				: array( self::REFUSED, "names table $ok, outside the plugin's tables" );
		};
		if ( preg_match( '/^DROP (DATABASE|SCHEMA)\b/i', $s ) ) {
			return array( self::REFUSED, 'drops a database' );
		}
		if ( preg_match( "/^CREATE (?:TEMPORARY )?TABLE (?:IF NOT EXISTS )?$id\s*(.*)$/is", $s, $m ) ) {
			$rest = $m[2];
			if ( preg_match( "/^\(?\s*LIKE $id\s*\)?$/i", $rest, $like ) ) {
				return $decide( array( self::table_name( $m[1] ), self::table_name( $like[1] ) ), self::EXPAND, 'creates a table' );
			}
			if ( preg_match( '/\bSELECT\b/i', $rest ) ) {
				return $decide( array( self::table_name( $m[1] ) ), self::CONTRACT, 'creates a table from a query' );
			}
			return $decide( array( self::table_name( $m[1] ) ), self::EXPAND, 'creates a table' );
		}
		if ( preg_match( "/^CREATE (?:UNIQUE |FULLTEXT |SPATIAL )?INDEX (?:IF NOT EXISTS )?\S+ (?:USING \w+ )?ON $id\s*\(/i", $s, $m ) ) {
			return $decide( array( self::table_name( $m[1] ) ), self::EXPAND, 'creates an index' );
		}
		if ( preg_match( "/^ALTER (?:ONLINE |IGNORE )?TABLE $id (.+)$/is", $s, $m ) ) {
			$class = self::EXPAND;
			$why   = 'adds nullable or defaulted columns / indexes';
			foreach ( self::top_level_commas( $m[2] ) as $spec ) {
				$c = self::classify_alter_spec( $spec );
				if ( self::CONTRACT === $c[0] ) {
					$class = self::CONTRACT;
					$why   = $c[1];
					break;
				}
			}
			return $decide( array( self::table_name( $m[1] ) ), $class, $why );
		}
		if ( preg_match( "/^INSERT (?:IGNORE )?(?:INTO )?$id\s*(\(([^)]*)\))?\s*VALUES\s*(.+)$/is", $s, $m ) ) {
			$table = self::table_name( $m[1] );
			if ( '' !== $options_table && $table === $options_table ) {
				return self::classify_option_insert( $m[3] ?? '', $m[4], $option_prefix );
			}
			return $decide( array( $table ), self::CONTRACT, 'inserts rows into a table' );
		}
		if ( preg_match( "/^(?:INSERT|REPLACE) (?:IGNORE )?(?:INTO )?$id/i", $s, $m ) ) {
			return $decide( array( self::table_name( $m[1] ) ), self::CONTRACT, 'writes rows from a query or replaces rows' );
		}
		if ( preg_match( "/^UPDATE (?:LOW_PRIORITY )?(?:IGNORE )?$id\s+SET\b/i", $s, $m ) ) {
			return $decide( array( self::table_name( $m[1] ) ), self::CONTRACT, 'updates existing rows' );
		}
		if ( preg_match( "/^DELETE (?:LOW_PRIORITY )?(?:QUICK )?(?:IGNORE )?FROM $id/i", $s, $m ) ) {
			return $decide( array( self::table_name( $m[1] ) ), self::CONTRACT, 'deletes rows' );
		}
		if ( preg_match( "/^TRUNCATE (?:TABLE )?$id$/i", $s, $m ) ) {
			return $decide( array( self::table_name( $m[1] ) ), self::CONTRACT, 'truncates a table' );
		}
		if ( preg_match( '/^DROP (?:TEMPORARY )?TABLES? (?:IF EXISTS )?(.+?)(?: RESTRICT| CASCADE)?$/i', $s, $m ) ) {
			$names = array_map( array( __CLASS__, 'table_name' ), self::top_level_commas( $m[1] ) );
			return $decide( $names, self::CONTRACT, 'drops a table' );
		}
		if ( preg_match( "/^DROP INDEX (?:IF EXISTS )?\S+ ON $id/i", $s, $m ) ) {
			return $decide( array( self::table_name( $m[1] ) ), self::CONTRACT, 'drops an index' );
		}
		if ( preg_match( '/^RENAME TABLES? (.+)$/i', $s, $m ) ) {
			$names = array();
			foreach ( self::top_level_commas( $m[1] ) as $pair ) {
				$ab = preg_split( '/\s+TO\s+/i', $pair );
				if ( 2 !== count( $ab ) ) {
					return array( self::CONTRACT, 'cannot parse RENAME TABLE' );
				}
				$names[] = self::table_name( $ab[0] );
				$names[] = self::table_name( $ab[1] );
			}
			return $decide( $names, self::CONTRACT, 'renames a table' );
		}
		return array( self::CONTRACT, 'statement not recognised as additive' );
	}

	/**
	 * One ALTER TABLE specification.
	 *
	 * @param string $spec Specification.
	 * @return array{0:string, 1:string}
	 */
	private static function classify_alter_spec( $spec ) {
		$spec = trim( $spec );
		if ( preg_match( '/^(ALGORITHM|LOCK)\s*=?\s*\w+$/i', $spec ) ) {
			return array( self::EXPAND, 'option' );
		}
		if ( preg_match( '/^ADD (?:UNIQUE |FULLTEXT |SPATIAL )?(?:INDEX|KEY)\b/i', $spec ) || preg_match( '/^ADD UNIQUE\b/i', $spec ) ) {
			return array( self::EXPAND, 'adds an index' );
		}
		if ( preg_match( '/^ADD (?:CONSTRAINT|PRIMARY|FOREIGN|CHECK|PARTITION)\b/i', $spec ) ) {
			return array( self::CONTRACT, 'adds a constraint that existing code may violate' );
		}
		if ( preg_match( '/^ADD (?:COLUMN )?(?:IF NOT EXISTS )?(.+)$/is', $spec, $m ) ) {
			$defs = $m[1];
			if ( preg_match( '/^\((.*)\)$/s', trim( $defs ), $paren ) ) {
				$defs = $paren[1];
			}
			foreach ( self::top_level_commas( $defs ) as $def ) {
				$has_default = preg_match( '/\bDEFAULT\b/i', $def ) || preg_match( '/\bAUTO_INCREMENT\b/i', $def ) || preg_match( '/\b(GENERATED ALWAYS|AS)\s*\(/i', $def );
				if ( preg_match( '/\bNOT NULL\b/i', $def ) && ! $has_default ) {
					return array( self::CONTRACT, 'adds a NOT NULL column without a default' );
				}
				if ( preg_match( '/\b(PRIMARY KEY|UNIQUE|REFERENCES|CHECK)\b/i', $def ) ) {
					return array( self::CONTRACT, 'adds a column with a constraint' );
				}
			}
			return array( self::EXPAND, 'adds a nullable or defaulted column' );
		}
		return array( self::CONTRACT, 'changes or removes existing schema (' . strtok( $spec, ' ' ) . ')' );
	}

	/**
	 * INSERT INTO the options table: expand when every row is one of the plugin's own options.
	 *
	 * @param string $columns Column list.
	 * @param string $values  VALUES part.
	 * @param string $prefix  Plugin option prefix.
	 * @return array{0:string, 1:string}
	 */
	private static function classify_option_insert( $columns, $values, $prefix ) {
		if ( preg_match( '/\bON DUPLICATE KEY UPDATE\b/i', $values ) ) {
			return array( self::CONTRACT, 'overwrites existing option rows' );
		}
		$cols = array_map( fn( $c ) => strtolower( trim( $c, " `\t" ) ), explode( ',', $columns ) );
		$pos  = array_search( 'option_name', $cols, true );
		if ( '' === $prefix || false === $pos ) {
			return array( self::REFUSED, 'inserts option rows that are not the plugin\'s own' );
		}
		foreach ( self::top_level_commas( $values ) as $tuple ) {
			if ( ! preg_match( '/^\((.*)\)$/s', trim( $tuple ), $t ) ) {
				return array( self::CONTRACT, 'cannot parse the inserted option rows' );
			}
			$vals = self::top_level_commas( $t[1] );
			$name = isset( $vals[ $pos ] ) ? trim( $vals[ $pos ] ) : '';
			if ( ! preg_match( "/^'([^'\\\\]*)'$/", $name, $n ) ) {
				return array( self::CONTRACT, 'cannot parse the inserted option name' );
			}
			if ( 0 !== strpos( $n[1], $prefix ) ) {
				return array( self::REFUSED, "inserts option {$n[1]}, not one of the plugin's own ($prefix*)" );
			}
		}
		return array( self::EXPAND, 'inserts the plugin\'s own option rows' );
	}

	/**
	 * Classify SQL text: refused if any statement is, else contract if any is, else expand.
	 *
	 * @param string $sql           SQL text (one or more statements).
	 * @param array  $tables        The plugin's tables.
	 * @param string $options_table Options table.
	 * @param string $option_prefix Plugin option prefix.
	 * @return array{0:string, 1:string}
	 */
	public static function classify( $sql, $tables, $options_table = '', $option_prefix = '' ) {
		$worst = array( self::EXPAND, 'no statement' );
		$rank  = array(
			self::EXPAND   => 0,
			self::CONTRACT => 1,
			self::REFUSED  => 2,
		);
		foreach ( self::split( $sql ) as $stmt ) {
			$c = self::classify_statement( $stmt, $tables, $options_table, $option_prefix );
			if ( $rank[ $c[0] ] > $rank[ $worst[0] ] ) {
				$worst = array( $c[0], $c[1] . ': ' . substr( $stmt, 0, 120 ) );
			}
		}
		return $worst;
	}

	/**
	 * Migration SQL with `{prefix}` replaced by the site's table prefix.
	 *
	 * @param string $sql SQL.
	 * @return string
	 */
	public static function expand_prefix( $sql ) {
		global $wpdb;
		return str_replace( '{prefix}', $wpdb->prefix, $sql );
	}

	/**
	 * The migration record table, namespaced by the site's table prefix (two sites sharing one
	 * database never see each other's records).
	 *
	 * @return string
	 */
	public static function records_table() {
		global $wpdb;
		return $wpdb->prefix . 'molam_agent_migrations';
	}

	/**
	 * Create the record table (the agent's columns) if missing.
	 */
	public static function ensure_records_table() {
		global $wpdb;
		$t = self::records_table();
		$wpdb->query( "CREATE TABLE IF NOT EXISTS `$t` (plugin VARCHAR(64) NOT NULL, file_name VARCHAR(255) NOT NULL, sha256 CHAR(64) NOT NULL, version VARCHAR(64), applied_at VARCHAR(32) NOT NULL, PRIMARY KEY (plugin, file_name))" ); // phpcs:ignore WordPress.DB
	}

	/**
	 * Files already recorded for the plugin: name => sha256.
	 *
	 * @param string $plugin Plugin name.
	 * @return array<string, string>
	 */
	public static function applied( $plugin ) {
		global $wpdb;
		self::ensure_records_table();
		$t    = self::records_table();
		$rows = $wpdb->get_results( $wpdb->prepare( "SELECT file_name, sha256 FROM `$t` WHERE plugin = %s", $plugin ), ARRAY_A ); // phpcs:ignore WordPress.DB
		return array_column( (array) $rows, 'sha256', 'file_name' );
	}

	/**
	 * Session lock timeouts so no DDL waits a day behind an open transaction (issue 9).
	 */
	public static function bound_waits() {
		global $wpdb;
		$wpdb->query( 'SET SESSION lock_wait_timeout = 2' );
		$wpdb->query( 'SET SESSION innodb_lock_wait_timeout = 2' );
	}

	/**
	 * Run one statement with bounded waits: a lock timeout is retried a few times, then fails.
	 *
	 * @param string $stmt    Statement.
	 * @param int[]  $benign  Error numbers meaning "already done".
	 * @throws Molam_Form_Migration_Error When the statement fails.
	 */
	public static function run_statement( $stmt, $benign ) {
		global $wpdb;
		for ( $try = 0; $try < 3; $try++ ) {
			$suppress = $wpdb->suppress_errors( true );
			$ok       = $wpdb->query( $stmt ); // phpcs:ignore WordPress.DB
			$wpdb->suppress_errors( $suppress );
			if ( false !== $ok ) {
				return;
			}
			$errno = mysqli_errno( $wpdb->dbh );
			if ( in_array( $errno, $benign, true ) ) {
				return;
			}
			if ( 1205 !== $errno ) {
				break;
			}
			usleep( 200000 );
		}
		throw new Molam_Form_Migration_Error( 'migration statement failed: ' . $wpdb->last_error . ' in: ' . substr( $stmt, 0, 200 ) );
	}

	/**
	 * Apply pending migration files in lexical order, each recorded once applied.
	 *
	 * @param string $plugin  Plugin name.
	 * @param string $version Version being installed.
	 * @param array  $files   [[name, sha256, class, sql, down_sql|null], …].
	 * @param callable|null $on_file Called before (`false`) and after (`true`) each file: ($name, $done).
	 * @return string[] Names of the files applied now.
	 */
	public static function apply( $plugin, $version, $files, $on_file = null ) {
		global $wpdb;
		self::bound_waits();
		$done    = self::applied( $plugin );
		$applied = array();
		$t       = self::records_table();
		foreach ( $files as $file ) {
			list( $name, $sha, $class, $sql ) = $file;
			if ( isset( $done[ $name ] ) ) {
				continue;
			}
			if ( $on_file ) {
				$on_file( $name, false );
			}
			foreach ( self::split( self::expand_prefix( $sql ) ) as $stmt ) {
				self::run_statement( $stmt, self::EXPAND === $class ? self::ALREADY_APPLIED : array() );
			}
			$wpdb->query( $wpdb->prepare( "INSERT INTO `$t` (plugin, file_name, sha256, version, applied_at) VALUES (%s, %s, %s, %s, %s)", $plugin, $name, $sha, $version, gmdate( 'Y-m-d\TH:i:s\Z' ) ) ); // phpcs:ignore WordPress.DB
			$applied[] = $name;
			if ( $on_file ) {
				$on_file( $name, true );
			}
		}
		return $applied;
	}

	/**
	 * Run the reverse migrations of contract files, newest first, and forget their records.
	 * Re-running after a crash is safe: "already reverted" errors are ignored.
	 *
	 * @param string $plugin Plugin name.
	 * @param array  $files  Files as given to apply().
	 * @return string[] Names of the files reverted.
	 */
	public static function revert( $plugin, $files ) {
		global $wpdb;
		self::bound_waits();
		$t        = self::records_table();
		$reverted = array();
		foreach ( array_reverse( $files ) as $file ) {
			if ( self::CONTRACT !== $file[2] || null === ( $file[4] ?? null ) ) {
				continue;
			}
			foreach ( self::split( self::expand_prefix( $file[4] ) ) as $stmt ) {
				self::run_statement( $stmt, array_merge( self::ALREADY_REVERTED, self::ALREADY_APPLIED ) );
			}
			$wpdb->query( $wpdb->prepare( "DELETE FROM `$t` WHERE plugin = %s AND file_name = %s", $plugin, $file[0] ) ); // phpcs:ignore WordPress.DB
			$reverted[] = $file[0];
		}
		return $reverted;
	}
}
