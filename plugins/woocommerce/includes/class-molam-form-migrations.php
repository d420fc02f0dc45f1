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
 * - expand: CREATE TABLE, non-unique CREATE INDEX, ADD COLUMN nullable or with a default,
 *   ADD INDEX/KEY, plain INSERT into the options table (the plugin's own option rows). An expand-only release takes no table copy; its
 *   rollback puts files and option rows back, the additive schema stays (and stays recorded).
 * - contract: anything else (DROP, RENAME, MODIFY/CHANGE, UPDATE/DELETE/REPLACE, NOT NULL
 *   without a default, unique indexes, constraints, statements it cannot parse). It needs
 *   `migrations/down/<same file name>`, run on rollback so that rows written meanwhile stay.
 * - refused: a statement naming a table outside the plugin's set (entries ending with `*`
 *   match a prefix), a schema-qualified name, or a schema change of the options table.
 */
class Molam_Form_Migrations {

	const EXPAND   = 'expand';
	const CONTRACT = 'contract';
	const REFUSED  = 'refused';

	// MariaDB errors meaning "this additive step is already there" (re-run after a crash).
	const ALREADY_APPLIED = array( 1050, 1060, 1061 );
	// MariaDB errors meaning "this reverse step is already done" (re-run after a crash).
	const ALREADY_REVERTED = array( 1051, 1091, 1146 );

	const IDENT = '(?:`(?:[^`]|``)+`|"(?:[^"]|"")+"|\[[^\]]+\]|[A-Za-z0-9_$.]+)';

	/**
	 * Split a script on top-level `;`, honouring quotes, comments and dollar quotes; comments
	 * are dropped, empty statements skipped (molam_agent/policy.py split_statements).
	 *
	 * @param string $sql SQL text.
	 * @return string[]
	 */
	public static function split( $sql ) {
		$out = array();
		$buf = '';
		$n   = strlen( $sql );
		$i   = 0;
		while ( $i < $n ) {
			$c   = $sql[ $i ];
			$nxt = $i + 1 < $n ? $sql[ $i + 1 ] : '';
			if ( ( '-' === $c && '-' === $nxt ) || '#' === $c ) {
				$j    = strpos( $sql, "\n", $i );
				$i    = false === $j ? $n : $j;
				$buf .= ' ';
				continue;
			}
			if ( '/' === $c && '*' === $nxt ) {
				$j    = strpos( $sql, '*/', $i + 2 );
				$i    = false === $j ? $n : $j + 2;
				$buf .= ' ';
				continue;
			}
			if ( "'" === $c || '"' === $c || '`' === $c ) {
				$j = $i + 1;
				while ( $j < $n ) {
					if ( '\\' === $sql[ $j ] && "'" === $c ) {
						$j += 2;
						continue;
					}
					if ( $sql[ $j ] === $c ) {
						if ( $j + 1 < $n && $sql[ $j + 1 ] === $c ) {
							$j += 2;
							continue;
						}
						break;
					}
					++$j;
				}
				$buf .= substr( $sql, $i, $j + 1 - $i );
				$i    = $j + 1;
				continue;
			}
			if ( '$' === $c && preg_match( '/^\$[A-Za-z_]*\$/', substr( $sql, $i, 64 ), $m ) ) {
				$tag  = $m[0];
				$j    = strpos( $sql, $tag, $i + strlen( $tag ) );
				$j    = false === $j ? $n : $j + strlen( $tag );
				$buf .= substr( $sql, $i, $j - $i );
				$i    = $j;
				continue;
			}
			if ( ';' === $c ) {
				if ( '' !== trim( $buf ) ) {
					$out[] = trim( $buf );
				}
				$buf = '';
				++$i;
				continue;
			}
			$buf .= $c;
			++$i;
		}
		if ( '' !== trim( $buf ) ) {
			$out[] = trim( $buf );
		}
		return $out;
	}

	/**
	 * Split on `$sep` outside parentheses and quotes.
	 *
	 * @param string $text Text.
	 * @return string[]
	 */
	private static function split_top( $text ) {
		$parts = array();
		$depth = 0;
		$cur   = '';
		$quote = '';
		$len   = strlen( $text );
		for ( $i = 0; $i < $len; $i++ ) {
			$ch = $text[ $i ];
			if ( '' !== $quote ) {
				$cur .= $ch;
				if ( $ch === $quote ) {
					$quote = '';
				}
				continue;
			}
			if ( "'" === $ch || '"' === $ch || '`' === $ch ) {
				$quote = $ch;
			} elseif ( '(' === $ch ) {
				++$depth;
			} elseif ( ')' === $ch ) {
				--$depth;
			} elseif ( ',' === $ch && 0 === $depth ) {
				$parts[] = trim( $cur );
				$cur     = '';
				continue;
			}
			$cur .= $ch;
		}
		if ( '' !== trim( $cur ) ) {
			$parts[] = trim( $cur );
		}
		return $parts;
	}

	/**
	 * A bare identifier from its quoted form.
	 *
	 * @param string $name Identifier.
	 * @return string
	 */
	public static function unquote( $name ) {
		if ( strlen( $name ) >= 2 && false !== strpos( '`"[', $name[0] ) && false !== strpos( '`"]', substr( $name, -1 ) ) ) {
			return str_replace( array( '``', '""' ), array( '`', '"' ), substr( $name, 1, -1 ) );
		}
		return $name;
	}

	/**
	 * Is `$name` one of `$tables` (an entry ending with `*` matches a prefix)?
	 *
	 * @param string   $name   Table.
	 * @param string[] $tables Configured tables.
	 * @return bool
	 */
	public static function table_allowed( $name, $tables ) {
		foreach ( $tables as $t ) {
			if ( ( '*' === substr( $t, -1 ) && 0 === strpos( $name, substr( $t, 0, -1 ) ) ) || $name === $t ) {
				return true;
			}
		}
		return false;
	}

	/**
	 * Names that appear where a table name goes (best effort, for the refusal rule).
	 *
	 * @param string $stmt Statement.
	 * @return string[]
	 */
	private static function referenced_tables( $stmt ) {
		$id    = self::IDENT;
		$body  = preg_replace( "/'(?:[^'\\\\]|\\\\.|'')*'/", "''", $stmt );
		$body  = preg_replace( '/\b(?:DUPLICATE\s+KEY|DO)\s+UPDATE\b/i', ' ', $body );
		$names = array();
		preg_match_all( "/\\b(?:FROM|JOIN|INTO|UPDATE|TABLE|REFERENCES|LIKE)\\s+(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?(?:ONLY\\s+)?($id)/i", $body, $m );
		foreach ( $m[1] as $name ) {
			if ( in_array( strtoupper( $name ), array( 'SELECT', 'SET', 'VALUES', 'WHERE', 'DEFAULT', 'NULL', 'ALL', 'DISTINCT', 'LATERAL' ), true ) || '(' === $name[0] ) {
				continue;
			}
			$names[] = $name;
		}
		if ( preg_match( '/^RENAME\s+TABLE\b/i', $body ) ) {
			preg_match_all( "/(?:,|\\bTO)\\s+($id)/i", $body, $r );
			$names = array_merge( $names, $r[1] );
		}
		preg_match_all( "/\\bRENAME\\s+(?:TO|AS)\\s+($id)/i", $body, $r );
		return array_merge( $names, $r[1] );
	}

	/**
	 * Is a column definition additive (nullable or defaulted, no key or constraint)?
	 *
	 * @param string $coldef Definition after the column name.
	 * @return array{0:bool, 1:string}
	 */
	private static function column_is_expand( $coldef ) {
		$text = preg_replace( "/'(?:[^'\\\\]|\\\\.|'')*'/", "''", $coldef );
		if ( preg_match( '/\b(PRIMARY\s+KEY|UNIQUE|AUTO_INCREMENT|REFERENCES|CHECK|GENERATED|SERIAL)\b|\bAS\s*\(/i', $text ) ) {
			return array( false, 'column with a key, constraint or generated value' );
		}
		if ( preg_match( '/\bNOT\s+NULL\b/i', $text ) && ! preg_match( '/\bDEFAULT\b/i', $text ) ) {
			return array( false, 'NOT NULL column without a default' );
		}
		return array( true, '' );
	}

	/**
	 * Classify one statement, exactly as molam_agent/policy.py classify_statement does (both are
	 * held to tests/fixtures/migration_policy_cases.json).
	 *
	 * @param string      $stmt          Statement (comments removed).
	 * @param string[]    $tables        The plugin's tables (`*` suffix: prefix match).
	 * @param string|null $options_table The shared options table.
	 * @return array{0:string, 1:string} Class and reason.
	 */
	public static function classify_statement( $stmt, $tables, $options_table = null ) {
		$id = self::IDENT;
		$s  = trim( preg_replace( '/\s+/', ' ', $stmt ) );
		$up = strtoupper( $s );

		$names = array_map( array( __CLASS__, 'unquote' ), self::referenced_tables( $s ) );
		$m_idx = null;
		if ( preg_match( "/^CREATE\\s+(?:UNIQUE\\s+)?INDEX\\s+(?:CONCURRENTLY\\s+)?(?:IF\\s+NOT\\s+EXISTS\\s+)?($id)\\s+ON\\s+(?:ONLY\\s+)?($id)/i", $s, $mm ) ) {
			$m_idx   = $mm;
			$names[] = self::unquote( $mm[2] );
		}
		foreach ( $names as $name ) {
			if ( false !== strpos( $name, '.' ) ) {
				return array( self::REFUSED, "schema-qualified table name $name" );
			}
			if ( ! ( self::table_allowed( $name, $tables ) || $name === $options_table ) ) {
				return array( self::REFUSED, "table $name is not one of the plugin's configured tables" );
			}
		}
		$shared = array( self::REFUSED, "the options table is shared: its schema is not the plugin's" );
		if ( preg_match( "/^CREATE\\s+TABLE\\s+(IF\\s+NOT\\s+EXISTS\\s+)?($id)\\s*(\\(|LIKE\\b)/i", $s, $m ) ) {
			return self::unquote( $m[2] ) === $options_table ? $shared : array( self::EXPAND, 'creates a table' );
		}
		if ( 0 === strpos( $up, 'CREATE TABLE' ) && preg_match( '/\bAS\s+SELECT\b/', $up ) ) {
			return array( self::CONTRACT, 'CREATE TABLE … AS SELECT copies rows' );
		}
		if ( $m_idx ) {
			if ( self::unquote( $m_idx[2] ) === $options_table ) {
				return $shared;
			}
			if ( 0 === strpos( $up, 'CREATE UNIQUE' ) ) {
				return array( self::CONTRACT, 'a unique index restricts writes old code may make' );
			}
			return array( self::EXPAND, 'creates an index' );
		}
		if ( preg_match( "/^ALTER\\s+TABLE\\s+(?:ONLY\\s+)?(?:IF\\s+EXISTS\\s+)?($id)\\s+(.*)$/i", $s, $m ) ) {
			if ( self::unquote( $m[1] ) === $options_table ) {
				return $shared;
			}
			$columns = 0;
			$index   = false;
			foreach ( self::split_top( $m[2] ) as $action ) {
				if ( preg_match( "/^ADD\\s+(?:INDEX|KEY)\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?($id)?\\s*\\(/i", $action ) ) {
					$index = true;
					continue;
				}
				if ( preg_match( '/^ADD\s+(UNIQUE|PRIMARY|CONSTRAINT|FOREIGN|FULLTEXT|SPATIAL|CHECK)\b/i', $action ) ) {
					return array( self::CONTRACT, 'a key or constraint restricts writes old code may make' );
				}
				if ( ! preg_match( "/^ADD\\s+(?:COLUMN\\s+)?(?:IF\\s+NOT\\s+EXISTS\\s+)?($id)\\s+(.+)$/i", $action, $c ) || in_array( strtoupper( $c[1] ), array( 'COLUMN', '(', 'PARTITION' ), true ) ) {
					return array( self::CONTRACT, "ALTER TABLE action '" . substr( $action, 0, 40 ) . "' is not additive" );
				}
				list( $ok, $why ) = self::column_is_expand( $c[2] );
				if ( ! $ok ) {
					return array( self::CONTRACT, $why );
				}
				++$columns;
			}
			if ( ! $columns && ! $index ) {
				return array( self::CONTRACT, 'ALTER TABLE without an additive action' );
			}
			return array( self::EXPAND, $columns ? 'adds nullable or defaulted columns' : 'adds an index' );
		}
		if ( preg_match( "/^INSERT\\s+(?:IGNORE\\s+)?INTO\\s+($id)/i", $s, $m ) ) {
			if ( preg_match( '/\bON\s+DUPLICATE\s+KEY\b|\bDO\s+UPDATE\b|\bSELECT\b/', $up ) ) {
				return array( self::CONTRACT, 'an upsert or INSERT … SELECT' );
			}
			if ( self::unquote( $m[1] ) !== $options_table ) {
				return array( self::CONTRACT, "inserting rows into the plugin's tables changes what old code reads" );
			}
			return array( self::EXPAND, "inserts the plugin's own option rows" );
		}
		return array( self::CONTRACT, strtok( $up, ' ' ) . ' statement' );
	}

	/**
	 * Classify SQL text: refused if any statement is, else contract if any is, else expand.
	 *
	 * @param string      $sql           SQL text (one or more statements).
	 * @param string[]    $tables        The plugin's tables.
	 * @param string|null $options_table The options table.
	 * @return array{0:string, 1:string} Class and the reason of the worst statement.
	 */
	public static function classify( $sql, $tables, $options_table = null ) {
		$worst = array( self::EXPAND, 'no statement' );
		$rank  = array(
			self::EXPAND   => 0,
			self::CONTRACT => 1,
			self::REFUSED  => 2,
		);
		foreach ( self::split( $sql ) as $stmt ) {
			$c = self::classify_statement( $stmt, $tables, $options_table );
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
